"""The README's main job runs end to end (a few steps per run) and prints the three FD001 results."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.integration
def test_demo_quick(tmp_path):
    done = subprocess.run([sys.executable, "examples/demo.py", "--quick", "--catalog", tmp_path / "cat", "--runs",
                           tmp_path / "runs"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in ("[1/4] ingest: created", "source model only, no FD001 labels", "5 FD001 engines alone, from scratch",
                 "transfer: source model + 5 engines + MMD", "from scratch: RMSE"):
        assert line in done.stdout, line
    assert (tmp_path / "runs" / "transfer" / "model.safetensors").is_file()
