"""Runs tracked in MLflow: parameters, every epoch's metrics, final metrics and artifacts in a real
file store; the run id reaches the model registry's lineage; --no-mlflow and failures."""

from __future__ import annotations

import json
import os

import pytest

from transferline.errors import TransferlineError
from transferline.train import load_config, train_loop

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _config(catalog, *overrides):
    return load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                       [f"catalog={catalog.root}", "epochs=3", "optim.max_steps_per_epoch=3", "progress=false",
                        "early_stopping.patience=5", *overrides])


def _runs(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("transferline")
    return client, client.search_runs([experiment.experiment_id]) if experiment else []


def test_a_cli_run_is_tracked_and_its_id_reaches_the_registry(sample_catalog, tmp_path, cli):
    store, run_dir = tmp_path / "store", tmp_path / "run"
    code, out, err = cli("transfer", "--config", REPO / "examples" / "configs" / "demo_transfer.yaml",
                         "--catalog", sample_catalog.root, "--run-dir", run_dir, "--quiet", "--mlflow-uri", store,
                         "epochs=3", "optim.max_steps_per_epoch=3", "early_stopping.patience=5")
    assert code == 0, err
    tracked = json.loads((run_dir / "mlflow.json").read_text())
    assert f"MLflow: run {tracked['run_id']}" in out
    client, runs = _runs(store)
    assert [r.info.run_id for r in runs] == [tracked["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["encoder.name"] == "cnn_small" and run.data.params["adaptation.name"] == "mmd"
    assert run.data.tags["transferline.run_dir"] == str(run_dir.resolve())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    logged = client.get_metric_history(tracked["run_id"], "source_val_rmse")
    assert [(m.step, m.value) for m in logged] == [(h["epoch"], pytest.approx(h["source_val_rmse"])) for h in history]
    assert len(logged) == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["final/test_rmse"] == pytest.approx(metrics["test_rmse"])
    artifacts = {a.path for a in client.list_artifacts(tracked["run_id"])}
    assert {"config.yaml", "history.jsonl", "metrics.json", "model.safetensors", "model.json"} <= artifacts

    code, out, err = cli("models", "register", run_dir, "--name", "tracked", "--models", tmp_path / "models")
    assert code == 0, err
    assert f"from MLflow run {tracked['run_id']}" in out
    from transferline.model_registry import ModelRegistry

    lineage = ModelRegistry(tmp_path / "models").get("tracked").lineage
    assert lineage["mlflow"]["run_id"] == tracked["run_id"]
    assert lineage["mlflow"]["tracking_uri"] == store.resolve().as_uri()


def test_the_default_store_is_mlruns_and_no_mlflow_turns_it_off(sample_catalog, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # MLflow 3 refuses a file store without it: the run sets it
    monkeypatch.chdir(tmp_path)
    train_loop({**_config(sample_catalog, "epochs=1"), "run_dir": str(tmp_path / "a")})
    _, runs = _runs(tmp_path / "mlruns")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"

    train_loop({**_config(sample_catalog, "epochs=1", "tracking.mlflow=false"), "run_dir": str(tmp_path / "b")})
    assert not (tmp_path / "b" / "mlflow.json").exists() and len(_runs(tmp_path / "mlruns")[1]) == 1
    train_loop(_config(sample_catalog, "epochs=1"))  # no run directory: nothing to track
    assert len(_runs(tmp_path / "mlruns")[1]) == 1


def test_a_run_that_fails_is_marked_failed_with_the_epochs_it_ran(sample_catalog, tmp_path):
    store = tmp_path / "store"
    config = {**_config(sample_catalog, f"tracking.uri={store}"), "run_dir": str(tmp_path / "run")}

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise RuntimeError("stopped by the test")

    with pytest.raises(RuntimeError, match="stopped by the test"):
        train_loop(config, report=stop_after_two)
    client, runs = _runs(store)
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "source_val_rmse")] == [1, 2]


def test_an_unreachable_tracking_server_is_named_before_training(sample_catalog, tmp_path, monkeypatch, cli):
    import socket

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {**_config(sample_catalog, f"tracking.uri=http://127.0.0.1:{port}"), "run_dir": str(tmp_path / "run")}
    with pytest.raises(TransferlineError, match=f"MLflow tracking at http://127.0.0.1:{port}.*--no-mlflow"):
        train_loop(config)
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert os.environ["MLFLOW_TRACKING_URI"] != config["tracking"]["uri"]  # no process-wide setting left behind
    code, _, err = cli("transfer", "--config", REPO / "examples" / "configs" / "demo_transfer.yaml",
                       "--no-mlflow", "--mlflow-uri", tmp_path)
    assert code == 2 and "--no-mlflow turns tracking off" in err


def test_tracking_settings_are_checked():
    from transferline.train.tracking import flat_params, tracking_uri

    with pytest.raises(TransferlineError, match="tracking.experiment: a non-empty text"):
        load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", ['tracking.experiment=""'])
    with pytest.raises(TransferlineError, match="tracking.mlflow: true or false"):
        load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", ["tracking.mlflow=maybe"])
    assert tracking_uri({"tracking": {"mlflow": True, "uri": "http://host:5000"}}) == "http://host:5000"
    assert tracking_uri({"tracking": {"mlflow": True, "uri": "/tmp/x"}}) == "file:///tmp/x"
    assert tracking_uri({"tracking": {"mlflow": False, "uri": "/tmp/x"}}) is None
    params = flat_params({"optim": {"lr": 0.001, "epochs": 3}, "data": {"source": {"domains": ["FD002"]}},
                          "options": {}})
    assert params == {"optim.lr": "0.001", "optim.epochs": "3", "data.source.domains": '["FD002"]', "options": "{}"}
