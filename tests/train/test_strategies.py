"""Fine-tuning strategies: what trains when, discriminative rates, the L2-SP pull; early stopping."""

from __future__ import annotations

import pytest
import torch

from transferline.data import SeriesInput
from transferline.encoders import create_encoder
from transferline.train import EarlyStopping, create_strategy, list_strategies


def _encoder():
    torch.manual_seed(0)
    return create_encoder("cnn_small", SeriesInput(channels=3, window=12), width=8)


def _trainable(module) -> list[bool]:
    return [p.requires_grad for p in module.parameters()]


def test_registry():
    assert set(list_strategies()) == {"full", "linear_probe", "freeze_unfreeze", "l2sp", "lp_ft"}


def test_linear_probe_freezes_encoder_and_its_batchnorm():
    encoder = _encoder().train()
    create_strategy("linear_probe").on_epoch_start(0, encoder)
    assert not any(_trainable(encoder))
    assert all(not m.training for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert not encoder.training  # the head learns from inference features: no dropout in the encoder


def test_a_linear_head_is_hidden_zero():
    from transferline.tasks import create_task

    task = create_task("text_classification", hidden=0, dropout=0.0)
    task.bind(["a", "b", "c"])
    head = task.build_head(16)
    assert [type(m) for m in head] == [torch.nn.Dropout, torch.nn.Linear] and head[1].out_features == 3
    assert sum(p.numel() for p in head.parameters()) == 16 * 3 + 3
    task = create_task("text_classification", hidden=-1)
    task.bind(["a", "b"])
    with pytest.raises(ValueError, match=r"task.options.hidden: 0 \(a linear head\) or more units, not -1"):
        task.build_head(16)


def test_freeze_then_unfreeze_at_once_and_gradually():
    encoder = _encoder().train()
    strategy = create_strategy("freeze_unfreeze", freeze_epochs=2, encoder_lr_mult=0.1)
    groups = strategy.param_groups(encoder, [torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[1]["lr"] == 1e-3
    strategy.on_epoch_start(1, encoder)
    assert not any(_trainable(encoder))
    strategy.on_epoch_start(2, encoder)
    assert all(_trainable(encoder))
    gradual = create_strategy("freeze_unfreeze", freeze_epochs=1, gradual=True)
    blocks = list(encoder.body)
    gradual.on_epoch_start(1, encoder)  # first unfrozen epoch: only the block nearest the output
    assert [all(_trainable(b)) for b in blocks] == [False, False, True]
    gradual.on_epoch_start(2, encoder)
    assert [all(_trainable(b)) for b in blocks] == [False, True, True]


def test_l2sp_penalty_is_zero_at_start_and_grows():
    encoder = _encoder()
    strategy = create_strategy("l2sp", alpha=0.5)
    strategy.param_groups(encoder, [], lr=1e-3)
    assert float(strategy.penalty(encoder).detach()) == 0.0
    with torch.no_grad():
        first = next(encoder.parameters())
        first.add_(1.0)
    assert float(strategy.penalty(encoder).detach()) == pytest.approx(0.5 * 0.5 * first.numel())


def test_early_stopping_keeps_best_state():
    module = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=1, higher_is_better=False)
    for epoch, value in enumerate([3.0, 2.0, 2.5, 2.4]):
        with torch.no_grad():
            module.weight.fill_(value)
        stopper.update(value, epoch, module)
    assert stopper.best == 2.0 and stopper.best_epoch == 1 and stopper.should_stop
    stopper.restore(module)
    assert float(module.weight.detach()) == 2.0


def test_weight_average_is_evaluated_and_kept_while_training_goes_on_from_live_weights():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from transferline.train.loop import run_epochs

    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.zero_()
    decay, seen = 0.5, []
    averaged = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    opt = torch.optim.SGD(module.parameters(), lr=1.0)

    def evaluate():
        seen.append(float(module.weight))
        return {"w": -abs(float(module.weight) - 2.5)}  # best when the evaluated weight is nearest 2.5

    run_epochs(module=module, step=lambda p: {"loss": -module.weight.sum()}, steps_per_epoch=3, epochs=2,
               optimizer=opt, evaluate=evaluate, metric="w", higher_is_better=True, patience=5, progress=False,
               averaged=averaged)
    # live weights climb 1, 2, ..., 6 (one per step); the average starts at the first and decays to each next
    ema, by_hand = None, []
    for live in range(1, 7):
        ema = float(live) if ema is None else decay * ema + (1 - decay) * live
        by_hand.append(ema)
    assert seen == pytest.approx([by_hand[2], by_hand[5]])  # epoch ends saw the average, not 3 and 6
    assert float(module.weight) == pytest.approx(by_hand[2])  # the best evaluated state was the first average
