"""Linear probes fitted to convergence (``strategy=linear_probe`` with ``solver=lbfgs``), LP-FT
(``strategy=lp_ft``), runs that keep their last epoch (``early_stopping.metric=last``) and unit-length
text features (``encoder.options.normalize``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from transferline.tasks import create_task
from transferline.train.loop import EarlyStopping
from transferline.train.strategies import LinearProbe, create_strategy, linear_layer


def _blobs(n=90, dim=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, dim)) + 1.5 * np.eye(classes, dim)[y]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("c", [0.1, 10.0])
def test_the_lbfgs_probe_is_scikit_learns_logistic_regression(c):
    """The same objective (mean cross-entropy + ||W||² / (2 C n), bias unpenalized) reaches the same
    minimum: coefficients, intercepts and class probabilities agree with scikit-learn's."""
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs()
    task = create_task("text_classification", hidden=0)
    task.bind(["a", "b", "c"])
    head = task.build_head(x.shape[1])
    fit = LinearProbe("lbfgs", c).fit_head(head, task, x, y)
    assert fit["probe_iterations"] > 1
    reference = LogisticRegression(C=c, max_iter=5000, tol=1e-10).fit(x.numpy(), y.numpy())
    layer = linear_layer(head)
    # softmax is invariant to a shift shared by all classes: compare centred weights and biases
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    np.testing.assert_allclose(w - w.mean(0), reference.coef_ - reference.coef_.mean(0), atol=2e-3)
    np.testing.assert_allclose(b - b.mean(), reference.intercept_ - reference.intercept_.mean(), atol=2e-3)
    with torch.no_grad():
        probabilities = torch.softmax(head.eval()(x), -1).numpy()
    np.testing.assert_allclose(probabilities, reference.predict_proba(x.numpy()), atol=1e-3)


def test_probe_options_and_heads_are_checked():
    with pytest.raises(ValueError, match="solver: 'sgd' or 'lbfgs'"):
        LinearProbe("adam")
    with pytest.raises(ValueError, match="strategy.options.c: a positive"):
        create_strategy("lp_ft", c=0)
    task = create_task("text_classification", hidden=64)
    task.bind(["a", "b"])
    with pytest.raises(ValueError, match="set task.options.hidden=0"):
        linear_layer(task.build_head(8))
    assert isinstance(linear_layer(nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 2))), nn.Linear)


def test_keep_last_keeps_the_last_epoch_and_never_stops():
    module = nn.Linear(1, 1)
    stopper = EarlyStopping(patience=0, higher_is_better=True, keep_last=True)
    for epoch, value in enumerate([0.9, 0.5, 0.4]):
        with torch.no_grad():
            module.weight.fill_(epoch)
        stopper.update(value, epoch, module)
        assert not stopper.should_stop
    stopper.restore(module)
    assert stopper.best_epoch == 2 and float(module.weight.detach()) == 2.0


@pytest.fixture(scope="module")
def log_catalog(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import maintenance_log

    root = tmp_path_factory.mktemp("probe")
    catalog = Catalog(root / "catalog")
    catalog.ingest("log", create_reader("text")(maintenance_log(root / "log.csv"), text_col="note", label_col="fault"))
    return catalog


def _config(catalog, *overrides):
    from transferline.train import load_config

    from ..conftest import REPO

    return load_config(REPO / "examples" / "configs" / "text_classification.yaml",
                       [f"catalog={catalog.root}", "progress=false", "tracking.mlflow=false", "target.per_class=4",
                        "data.spec_options.max_length=16", "task.options.hidden=0", *overrides])


@pytest.mark.integration
def test_a_probe_run_fits_once_and_lp_ft_starts_from_it(log_catalog, tmp_path):
    """A probe run is one fit and one evaluation; LP-FT at a vanishing learning rate is that probe (the head
    it fine-tunes from is the fitted one); with a rate it keeps its last epoch; unit-length features."""
    from transferline.train import train_loop

    probe = ["strategy=linear_probe", "strategy.options.solver=lbfgs", "strategy.options.c=10",
             "encoder.options.normalize=true"]
    run = tmp_path / "probe"
    metrics = train_loop(_config(log_catalog, *probe, f"run_dir={run}"))
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert metrics["epochs_run"] == 1 and len(history) == 1 and history[0]["probe_iterations"] > 1
    assert metrics["probe_samples"] == metrics["train_samples"] == 12  # 4 of each of 3 classes
    assert 0 <= metrics["test_macro_f1"] <= 1 and (run / "model.safetensors").is_file()
    # the saved model, rebuilt as serving does (unit-length features included), predicts what the run did
    from safetensors.torch import load_file

    from transferline.data import InputSpec
    from transferline.model_registry import build_inference_model
    from transferline.train import prepare_data

    meta = json.loads((run / "model.json").read_text())
    assert meta["options"] == {"normalize": True}
    model = build_inference_model(meta, load_file(str(run / "model.safetensors")), InputSpec.from_dict(meta["input"]))
    test = prepare_data(_config(log_catalog, *probe)).test
    with torch.no_grad():
        served = model(torch.from_numpy(test.get(np.arange(len(test))))).numpy().argmax(-1)
    np.testing.assert_array_equal(served, np.load(run / "evaluation.npz")["test_predicted"])

    still = train_loop(_config(log_catalog, "strategy=lp_ft", "strategy.options.c=10", "encoder.options.normalize=true",
                               "optim.lr=1.0e-12", "epochs=1"))
    assert still["test_macro_f1"] == pytest.approx(metrics["test_macro_f1"])
    assert still["test_accuracy"] == pytest.approx(metrics["test_accuracy"])

    tuned = train_loop(_config(log_catalog, "strategy=lp_ft", "strategy.options.c=10",
                               "strategy.options.encoder_lr_mult=0.01", "early_stopping.metric=last", "epochs=3",
                               "early_stopping.patience=0"))
    assert tuned["epochs_run"] == 3 and tuned["best_epoch"] == 3 and tuned["selection_metric"] == "last epoch"

    from transferline.data import TextInput
    from transferline.encoders import create_encoder

    encoder = create_encoder("hf/all-minilm-l6-v2", TextInput(max_length=16), normalize=True).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0]])
    with torch.no_grad():
        assert float(encoder(ids).norm(dim=-1)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.integration
def test_probe_errors_name_the_setting(log_catalog):
    from transferline.errors import TransferlineError
    from transferline.train import train_loop

    with pytest.raises(ValueError, match="set task.options.hidden=0"):
        train_loop(_config(log_catalog, "strategy=linear_probe", "strategy.options.solver=lbfgs",
                           "task.options.hidden=8"))
    with pytest.raises(TransferlineError, match="early_stopping.metric: 'auto', 'source_val', 'target_val', 'dev' or "
                                                "'last', not 'final'"):
        _config(log_catalog, "early_stopping.metric=final")
    with pytest.raises(ValueError, match="encoder option normalize: true or false"):
        from transferline.data import TextInput
        from transferline.encoders import create_encoder

        create_encoder("hf/all-minilm-l6-v2", TextInput(max_length=16), normalize="yes")
