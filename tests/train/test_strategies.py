"""Fine-tuning strategies: what trains when, discriminative rates, the L2-SP pull; early stopping."""

from __future__ import annotations

import pytest
import torch

from transferline.encoders import create_encoder
from transferline.train import EarlyStopping, create_strategy, list_strategies


def _encoder():
    torch.manual_seed(0)
    return create_encoder("cnn_small", 3, 12, width=8)


def _trainable(module) -> list[bool]:
    return [p.requires_grad for p in module.parameters()]


def test_registry():
    assert set(list_strategies()) == {"full", "linear_probe", "freeze_unfreeze", "l2sp"}


def test_linear_probe_freezes_encoder_and_its_batchnorm():
    encoder = _encoder().train()
    create_strategy("linear_probe").on_epoch_start(0, encoder)
    assert not any(_trainable(encoder))
    assert all(not m.training for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm1d))


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
