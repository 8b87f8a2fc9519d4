"""A real two-node Ray cluster on 127.0.0.1 (``ray start --head`` plus ``ray start --address``):
the CLI joins it with ``--address`` and its two Ray Train workers run on different nodes, for a
transfer run and for a task run (process fit), each joining through ``ensure_ray``."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_nodes():
    """Head and worker node, one CPU each (so two one-CPU workers must use both nodes)."""
    # NOTE: every node and the driver share one token (Ray token auth); a node started by hand
    # otherwise runs without auth and the head refuses it.
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"},
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        for args in (["--head", f"--port={address.split(':')[1]}", "--include-dashboard=false"],
                     [f"--address={address}"]):
            proc = subprocess.run([BIN / "ray", "start", *args, *common], env=env, capture_output=True, text=True,
                                  timeout=180)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        yield address, env
    finally:
        subprocess.run([BIN / "ray", "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.ray
@pytest.mark.integration
def test_cli_transfer_trains_across_two_nodes(two_nodes, tmp_path):
    from transferline.sample_data import sample_path

    address, env = two_nodes
    catalog = tmp_path / "catalog"
    proc = subprocess.run([BIN / "transferline", "ingest", "cmapss", sample_path("cmapss"), "--catalog", catalog,
                           "--name", "cmapss-sample"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([BIN / "transferline", "transfer", "--config", REPO / "examples" / "configs" /
                           "demo_transfer.yaml", "epochs=2", "optim.max_steps_per_epoch=10", "target.labelled_units=0",
                           "--catalog", catalog, "--run-dir", tmp_path / "run", "--workers", "2",
                           "--address", address, "--quiet"],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = dict(line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2)
    assert table.get("ray_nodes") == "2", proc.stdout  # the worker group spanned both nodes
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["test_rmse"] > 0


@pytest.mark.ray
@pytest.mark.integration
def test_cli_process_fit_trains_across_two_nodes(two_nodes, tmp_path):
    """A task run joins the cluster as a transfer run does (it failed to join before ensure_ray
    imported Ray Train for a driver joining by address)."""
    from transferline.sample_data import sample_path

    address, env = two_nodes
    catalog = tmp_path / "catalog"
    proc = subprocess.run([BIN / "transferline", "ingest", "cnc-mill", sample_path("cnc_mill"), "--catalog", catalog,
                           "--name", "cnc", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([BIN / "transferline", "process", "fit", "--dataset", "cnc", "--catalog", catalog,
                           "--out", tmp_path / "run", "--members", "4", "--epochs", "20", "--no-eval",
                           "--workers", "2", "--address", address],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ray"] == {"workers": 2, "ray_nodes": 2}  # the worker group spanned both nodes
