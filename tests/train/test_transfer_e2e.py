"""End to end on the real vendored sample: FD002 → FD001, short runs, seeded and reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferline.train import load_config, prepare_data, train_loop

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _config(catalog, *overrides):
    return load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                       [f"catalog={catalog.root}", "epochs=2", "optim.max_steps_per_epoch=25", "progress=false",
                        "target.labelled_units=0", "strategy=full", *overrides])


def test_mmd_adaptation_lowers_feature_mmd(sample_catalog):
    config = _config(sample_catalog)
    data = prepare_data(config, sample_catalog)
    assert len(data.test) == 100 and data.target_labelled is None
    plain = train_loop({**config, "adaptation": {"name": "source_only", "options": {}}}, data=data)
    adapted = train_loop({**config, "adaptation": {"name": "mmd", "options": {"weight": 5.0, "ramp": False}}},
                         data=data)
    assert adapted["feature_mmd"] < 0.7 * plain["feature_mmd"], (plain["feature_mmd"], adapted["feature_mmd"])
    for m in (plain, adapted):
        assert 0 < m["test_rmse"] < 125 and m["test_score"] > 0


def test_runs_are_reproducible_and_write_a_run_dir(sample_catalog, tmp_path):
    config = _config(sample_catalog, "adaptation=dann", "target.labelled_units=3", "optim.ema=0.9")
    first = train_loop({**config, "run_dir": str(tmp_path / "a")})
    second = train_loop({**config, "run_dir": str(tmp_path / "b")})
    assert first["test_rmse"] == second["test_rmse"] and first["feature_mmd"] == second["feature_mmd"]
    run = tmp_path / "a"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "history.jsonl", "metrics.json", "model.safetensors",
                                                "model.json"}
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and "train_domain" in history[0]
    # the report's predictions are RUL in cycles, as the test metrics score them (the head predicts RUL / 125)
    with np.load(run / "evaluation.npz") as saved:
        target, predicted = saved["test_target"], saved["test_predicted"][:, 0]
    assert np.sqrt(np.mean((np.clip(predicted, 0, None) - target) ** 2)) == pytest.approx(first["test_rmse"], rel=1e-4)


def test_pretrain_then_transfer_via_cli(sample_catalog, tmp_path, cli):
    pre = tmp_path / "pre"
    code, out, err = cli("pretrain", "--config", REPO / "examples" / "configs" / "demo_pretrain.yaml",
                         "--catalog", sample_catalog.root, "--run-dir", pre, "--quiet", "epochs=1",
                         "optim.max_steps_per_epoch=10", "optim.ema=0.9")
    assert code == 0, err
    assert (pre / "encoder.safetensors").is_file() and "val_loss" in out
    code, out, err = cli("transfer", "--config", REPO / "examples" / "configs" / "demo_transfer.yaml",
                         "--catalog", sample_catalog.root, "--run-dir", tmp_path / "tr", "--quiet", "epochs=2",
                         "optim.max_steps_per_epoch=10", f"pretrained={pre}")
    assert code == 0, err
    assert "test_rmse" in out and json.loads((tmp_path / "tr" / "metrics.json").read_text())["test_rmse"] > 0
    code, _, err = cli("transfer", "--config", REPO / "examples" / "configs" / "demo_transfer.yaml",
                       "--catalog", sample_catalog.root, "--quiet", "encoder=lstm", f"pretrained={pre}")
    assert code == 2 and "pretrained encoder is 'cnn_small'" in err


def test_dev_selection_uses_no_target_labels(sample_catalog):
    config = _config(sample_catalog, "adaptation=mmd", "early_stopping.metric=dev")
    history = []
    metrics = train_loop(config, report=history.append)
    assert metrics["selection_metric"] == "source_val_dev_risk"
    risks = [h["source_val_dev_risk"] for h in history]
    assert metrics["selection_value"] == min(risks) and all(r > 0 for r in risks)


def test_labelled_engine_count_reaches_the_cross_task_model(sample_catalog, tmp_path):
    """Cross-task transfer (RUL-pretrained encoder → failure within 30 cycles on a few labelled
    FD001 engines): the labelled count changes what the model trains on and what it answers."""
    pre = tmp_path / "pre"
    pretrain = load_config(REPO / "examples" / "configs" / "demo_pretrain.yaml",
                           [f"catalog={sample_catalog.root}", "epochs=1", "optim.max_steps_per_epoch=10",
                            "progress=false"])
    train_loop({**pretrain, "run_dir": str(pre)})
    runs = {n: train_loop(_config(sample_catalog, "source.domains=null", "adaptation=source_only",
                                  "task=failure_within", "task.options.horizon=30", "early_stopping.metric=target_val",
                                  f"target.labelled_units={n}", f"pretrained={pre}"))
            for n in (3, 6)}
    assert runs[3]["train_samples"] < runs[6]["train_samples"], runs
    assert runs[3]["target_labelled_samples"] == 0  # target-only: the labelled engines are the training set
    assert runs[3]["test_auroc"] != runs[6]["test_auroc"]
    assert 0 <= runs[3]["test_average_precision"] <= 1
