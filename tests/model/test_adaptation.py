"""Adaptation methods for regression and classification; label-free selection."""

from __future__ import annotations

import pytest
import torch

from transferline.adaptation import DomainBatch, create_adaptation, density_ratio, dev_risk, list_adaptations
from transferline.data import Batch, SeriesInput
from transferline.encoders import create_encoder
from transferline.tasks import create_task


def series(x, y=None) -> Batch:
    return Batch({"series": x}, y)


@pytest.mark.parametrize("method", list_adaptations())
@pytest.mark.parametrize("task_name,y", [("rul", torch.rand(8) * 120), ("fault_diagnosis", torch.randint(0, 10, (8,)))])
def test_step_regression_and_classification(method, task_name, y):
    torch.manual_seed(0)
    task = create_task(task_name, **({"n_classes": 10} if task_name == "fault_diagnosis" else {}))
    encoder = create_encoder("cnn_small", SeriesInput(channels=3, window=16))
    model = create_adaptation(method, encoder, task.build_head(encoder.out_dim), task)
    batch = DomainBatch(series(torch.randn(8, 3, 16), y), series(torch.randn(8, 3, 16) + 1),
                        series(torch.randn(4, 3, 16), y[:4]))
    out = model.step(batch, progress=0.5)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and "target_task" in out
    if method != "source_only":
        assert ("align" in out) or ("domain" in out)


def test_dann_reverses_gradient_into_encoder():
    torch.manual_seed(0)
    task = create_task("rul")
    encoder = create_encoder("cnn_small", SeriesInput(channels=3, window=16))
    model = create_adaptation("dann", encoder, task.build_head(encoder.out_dim), task, ramp=False).eval()
    batch = DomainBatch(series(torch.randn(8, 3, 16), torch.rand(8)), series(torch.randn(8, 3, 16)))
    weight = encoder.body[0][0].weight
    f = torch.cat([encoder(batch.source.inputs), encoder(batch.target.inputs)])
    dom = torch.cat([torch.zeros(8), torch.ones(8)])
    d_loss = torch.nn.functional.binary_cross_entropy_with_logits(model.discriminator(f), dom)
    g_domain = torch.autograd.grad(d_loss, weight)[0]
    g_task = torch.autograd.grad(task.loss(model.head(encoder(batch.source.inputs)), batch.source.target), weight)[0]
    g_total = torch.autograd.grad(model.step(batch)["loss"], weight)[0]
    # the encoder descends the task loss and ascends the domain loss
    torch.testing.assert_close(g_total, g_task - g_domain, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["mmd", "dann"])
def test_entropy_term_adds_target_prediction_entropy(method):
    task = create_task("fault_diagnosis", n_classes=4)
    batch = DomainBatch(series(torch.randn(8, 3, 16), torch.randint(0, 4, (8,))), series(torch.randn(8, 3, 16) + 1))
    outs = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        encoder = create_encoder("cnn_small", SeriesInput(channels=3, window=16))
        model = create_adaptation(method, encoder, task.build_head(encoder.out_dim), task, ramp=False,
                                  entropy=weight).eval()
        outs[weight] = model.step(batch)
        probs = torch.softmax(model(batch.target.inputs), -1)
    by_hand = -(probs * probs.log()).sum(-1).mean()
    assert "target_entropy" not in outs[0.0]
    torch.testing.assert_close(outs[0.5]["target_entropy"], by_hand.detach())
    torch.testing.assert_close(outs[0.5]["loss"] - outs[0.0]["loss"], 0.5 * by_hand.detach())


def test_entropy_term_is_refused_for_regression():
    task = create_task("rul")
    encoder = create_encoder("cnn_small", SeriesInput(channels=3, window=16))
    with pytest.raises(ValueError, match="entropy applies to classification"):
        create_adaptation("mmd", encoder, task.build_head(encoder.out_dim), task, entropy=0.1)


def test_density_ratio_and_dev():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(400, 2, generator=g)
    target = torch.randn(400, 2, generator=g) + torch.tensor([1.0, 0.0])
    w = density_ratio(source, target)
    near, far = source[:, 0] > 1, source[:, 0] < -1
    assert w[near].mean() > 2 * w[far].mean()  # source points where the target lies get more weight
    losses = torch.ones(400)
    assert dev_risk(losses, w) == pytest.approx(1.0, abs=1e-5)  # a constant loss is its own risk


@pytest.mark.parametrize("task_name,y", [("rul", torch.rand(6) * 120), ("fault_diagnosis", torch.randint(0, 10, (6,))),
                                         ("failure_within", torch.rand(6) * 60), ("regression", torch.rand(6))])
def test_task_loss_is_mean_of_sample_losses(task_name, y):
    task = create_task(task_name, **({"n_classes": 10} if task_name == "fault_diagnosis" else {}))
    output = task.build_head(4)(torch.randn(6, 4))
    per_sample = task.sample_losses(output, y)
    assert per_sample.shape == (6,)
    torch.testing.assert_close(task.loss(output, y), per_sample.mean())


def test_classification_takes_the_data_classes_and_refuses_a_mismatch():
    task = create_task("fault_diagnosis")
    task.bind(["crazing", "patches", "scratches"])
    assert task.n_classes == 3 and task.output(["crazing", "patches", "scratches"])["classes"][2] == "scratches"
    with pytest.raises(ValueError, match=r"n_classes=10 but the data has 7 classes"):
        create_task("fault_diagnosis", n_classes=10).bind([f"c{i}" for i in range(7)])
    with pytest.raises(ValueError, match="names no classes; set task.options.n_classes"):
        create_task("fault_diagnosis").bind([])
