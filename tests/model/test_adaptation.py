"""Adaptation methods for regression and classification; label-free selection."""

from __future__ import annotations

import pytest
import torch

from transferline.adaptation import DomainBatch, create_adaptation, density_ratio, dev_risk, list_adaptations
from transferline.data import Batch, SeriesInput
from transferline.encoders import create_encoder
from transferline.losses import certainty_weights, joint_mmd, mmd, multilinear_map
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
    if method not in ("source_only", "adabn"):
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


def test_joint_mmd_by_hand():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [4.0]])
    gx, gy = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # one layer: plain MMD
    torch.testing.assert_close(joint_mmd([x], [y], [[1.0]]), mmd(x, y, [1.0]))

    def k(a, b, bw):
        return torch.exp(-((a - b) ** 2).sum() / bw)

    def joint(i, a, ga, j, b, gb):
        return k(a[i], b[j], 1.0) * k(ga[i], gb[j], 0.5)

    pairs = lambda a, ga, b, gb: sum(joint(i, a, ga, j, b, gb) for i in range(2) for j in range(2)) / 4  # noqa: E731
    expected = pairs(x, gx, x, gx) + pairs(y, gy, y, gy) - 2 * pairs(x, gx, y, gy)
    torch.testing.assert_close(joint_mmd([x, gx], [y, gy], [[1.0], [0.5]]), expected)


def test_jmmd_aligns_features_and_outputs_jointly():
    torch.manual_seed(0)
    task = create_task("fault_diagnosis", n_classes=3)
    encoder = create_encoder("cnn_small", SeriesInput(channels=2, window=8))
    model = create_adaptation("jmmd", encoder, task.build_head(encoder.out_dim), task, ramp=False).eval()
    batch = DomainBatch(series(torch.randn(6, 2, 8), torch.randint(0, 3, (6,))), series(torch.randn(6, 2, 8) + 1))
    f_s, f_t = encoder(batch.source.inputs), encoder(batch.target.inputs)
    p_s, p_t = (torch.softmax(model.head(f), -1) for f in (f_s, f_t))
    expected = joint_mmd([f_s, p_s], [f_t, p_t], [None, [0.92]])
    torch.testing.assert_close(model.step(batch)["align"], expected.detach())


def test_cdan_conditions_the_discriminator_on_predictions_with_certainty_weights():
    torch.manual_seed(0)
    f = torch.tensor([[1.0, 2.0]])
    g = torch.tensor([[0.25, 0.75]])
    torch.testing.assert_close(multilinear_map(f, g), torch.tensor([[0.25, 0.5, 0.75, 1.5]]))
    uniform, sure = torch.full((1, 4), 0.25), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    w = certainty_weights(torch.cat([uniform, sure]))
    raw = torch.tensor([1 + 0.25, 2.0])  # 1 + exp(-ln 4), 1 + exp(0)
    torch.testing.assert_close(w, raw / raw.mean())

    task = create_task("fault_diagnosis", n_classes=3)
    encoder = create_encoder("cnn_small", SeriesInput(channels=2, window=8), width=8)
    model = create_adaptation("cdan", encoder, task.build_head(encoder.out_dim), task, ramp=False).eval()
    assert model.randomized is None and model.discriminator.net[0].in_features == 8 * 3
    batch = DomainBatch(series(torch.randn(5, 2, 8), torch.randint(0, 3, (5,))), series(torch.randn(4, 2, 8) + 1))
    out = model.step(batch)
    f_s, f_t = encoder(batch.source.inputs), encoder(batch.target.inputs)
    p_s, p_t = (torch.softmax(model.head(f), -1) for f in (f_s, f_t))
    logits = model.discriminator(torch.cat([multilinear_map(f_s, p_s), multilinear_map(f_t, p_t)]))
    domain = torch.cat([torch.zeros(5), torch.ones(4)])
    weights = torch.cat([certainty_weights(p_s), certainty_weights(p_t)])
    by_hand = (torch.nn.functional.binary_cross_entropy_with_logits(logits, domain, reduction="none") * weights).mean()
    torch.testing.assert_close(out["domain"], by_hand.detach())
    wide = create_adaptation("cdan", create_encoder("cnn_small", SeriesInput(channels=2, window=8), width=64),
                             create_task("fault_diagnosis", n_classes=100).build_head(64),
                             create_task("fault_diagnosis", n_classes=100))
    assert wide.randomized is not None and wide.discriminator.net[0].in_features == 1024


def test_cdan_regression_conditions_on_the_predicted_value():
    task = create_task("rul")
    encoder = create_encoder("cnn_small", SeriesInput(channels=2, window=8), width=8)
    model = create_adaptation("cdan", encoder, task.build_head(encoder.out_dim), task).eval()
    f = encoder(series(torch.randn(3, 2, 8)).inputs)
    y = model.head(f)
    torch.testing.assert_close(model.condition(f, model.predictions(f)), torch.cat([f, f * y], 1).detach())


def test_adabn_keeps_target_statistics_only():
    torch.manual_seed(0)
    task = create_task("rul")
    encoder = create_encoder("cnn_small", SeriesInput(channels=2, window=8), width=4)
    model = create_adaptation("adabn", encoder, task.build_head(encoder.out_dim), task).train()
    bn = encoder.body[0][1]
    source, target = torch.randn(16, 2, 8), torch.randn(16, 2, 8) * 3 + 5
    before = bn.running_mean.clone()
    with torch.no_grad():
        pre_bn = encoder.body[0][0](target)  # the first BatchNorm's input on the target batch
    model.step(DomainBatch(series(source, torch.rand(16)), series(target)))
    expected = 0.9 * before + 0.1 * pre_bn.mean(dim=(0, 2))
    torch.testing.assert_close(bn.running_mean, expected)
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        lstm = create_encoder("lstm", SeriesInput(channels=2, window=8))
        create_adaptation("adabn", lstm, task.build_head(lstm.out_dim), task)


def test_pseudo_labels_train_on_confident_target_predictions_after_alignment():
    torch.manual_seed(0)
    task = create_task("fault_diagnosis", n_classes=3)
    encoder = create_encoder("cnn_small", SeriesInput(channels=2, window=8))
    head = task.build_head(encoder.out_dim)
    model = create_adaptation("mmd", encoder, head, task, ramp=False, pseudo=0.5, threshold=0.34,
                              pseudo_start=0.5).eval()
    batch = DomainBatch(series(torch.randn(6, 2, 8), torch.randint(0, 3, (6,))), series(torch.randn(6, 2, 8)))
    assert "pseudo_loss" not in model.step(batch, progress=0.4)
    out = model.step(batch, progress=0.6)
    logits = model(batch.target.inputs)
    p, labels = torch.softmax(logits, -1).max(-1)
    keep = (p >= 0.34).float()
    by_hand = (torch.nn.functional.cross_entropy(logits, labels, reduction="none") * keep).mean()
    torch.testing.assert_close(out["pseudo_loss"], by_hand.detach())
    torch.testing.assert_close(out["pseudo_fraction"], keep.mean())
    with pytest.raises(ValueError, match="pseudo applies to classification"):
        create_adaptation("mmd", encoder, head, create_task("rul"), pseudo=1.0)
