"""A dataset larger than a Ray worker may hold trains in bounded memory through Ray Data.

Runs ``benchmarks/stream_memory.py`` (see its docstring): every Ray worker's private memory is capped
(``RLIMIT_DATA``) at its post-import size plus a budget several times smaller than the dataset. The
encoder is one narrow convolution: what is measured is the stream's memory, and the benchmark's
three 64-channel layers would spend most of the test's time in training steps.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO

BUDGET_MB = 640


@pytest.mark.ray
@pytest.mark.integration
def test_streaming_trains_on_a_dataset_larger_than_the_worker_memory_limit(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stream_memory.py"),
                           "--catalog", str(tmp_path / "catalog"), "--rows", "14000000",
                           "--budget-mb", str(BUDGET_MB), "--set", "encoder.options.width=16",
                           "--set", "encoder.options.depth=1", "--report", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    budget, dataset = report["budget_bytes"], report["dataset"]
    assert dataset["arrow_bytes"] > 2 * budget  # what holding the rows in memory takes
    # the limit bites: loading the windows in memory fails in a worker under it
    assert report["in_memory_load"].startswith("failed"), report["in_memory_load"]
    assert any(s in report["in_memory_load"] for s in ("MemoryError", "Cannot allocate", "malloc", "allocat")), \
        report["in_memory_load"]
    # the streamed run went through every window once and learned the wear signal
    metrics = report["metrics"]
    assert metrics["epochs_run"] == 1
    assert metrics["selection_value"] < 0.5 * report["label_std"], metrics
    assert 0 < report["peak"].get("train_worker_data_growth", 0) <= budget, report["peak"]
