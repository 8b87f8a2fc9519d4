"""The README's main job runs end to end (a few steps per run): the target plant arrives over OPC UA from
the simulator, every value once, and the three FD001 results are printed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.integration
@pytest.mark.ray
def test_demo_quick(tmp_path):
    done = subprocess.run([sys.executable, "examples/demo.py", "--quick", "--catalog", tmp_path / "cat", "--runs",
                           tmp_path / "runs", "--models", tmp_path / "models"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in ("[1/11] ingest files: created", "[2/11] plant FD001 over OPC UA", "[11/11] registered fd001-rul@1, "
                 "neu-5shot@1, maint-log@1, cnc-quality@1 and tiles-anomaly@1", "[7/11] steel-surface defects (NEU, 120 "
                 "vendored images, created)", "6 NEU images sent as JPEG", "[8/11] maintenance work orders (240 MaintIE "
                 "texts, created", "[9/11] process optimization (CNC milling, 18 experiments with set-points and "
                 "outcomes, created)", "[10/11] anomaly detection (magnetic tile, 22 vendored images with defect masks, "
                 "created)", "two tiles sent to tiles-anomaly@1 with heatmap=true",
                 "POST /v1/models/cnc-quality/recommend: with a worn tool, max feedrate", "next experiment (BoTorch qLogNEI): feedrate",
                 "work orders sent as text: 'hydraulic pump not working' → ",
                 "entity tagger (BIO spans, 5 top-level types, MiniLM-L6), trained on 194 work orders",
                 "source model only, no FD001 labels", "[6/11] three accelerometers of one bearing (CWRU, 7 vendored "
                 "recordings", "with one sensor down at test time: de ",
                 "5 FD001 engines alone, from scratch", "transfer: source model + 5 engines + MMD", "from scratch: RMSE"):
        assert line in done.stdout, line
    captured = re.search(r"([\d,]+) of ([\d,]+) published values captured", done.stdout)
    assert captured and captured.group(1) == captured.group(2), done.stdout
    pivoted = re.search(r"pivoted into ([\d,]+) engine cycles; ([\d,]+) equal the file rows exactly", done.stdout)
    assert pivoted and pivoted.group(1) == pivoted.group(2) and pivoted.group(1) != "0", done.stdout
    assert (tmp_path / "runs" / "transfer" / "model.safetensors").is_file()
    assert (tmp_path / "runs" / "tiles-anomaly" / "report.html").is_file()
    assert (tmp_path / "runs" / "maintie-tagger" / "model.safetensors").is_file()
    line = re.search(r"an inspection line \(48 NEU images, .*; of the 36 used, (\d+) have a window, (\d+) a note\): image, "
                     r"window and note fused on 24 labelled images in \d+ s, accuracy [\d.]+ on 12 held-out ones; with an "
                     r"input absent: photo", done.stdout)
    assert line and 0 < int(line.group(1)) < 36 and 0 < int(line.group(2)) < 36, done.stdout[-3000:]
    tagged = re.search(r"span F1 ([\d.]+) on 24 held-out ones \((\d+) spans\)", done.stdout)
    assert tagged and 0 <= float(tagged.group(1)) <= 1 and int(tagged.group(2)) > 40, done.stdout
    report = re.search(r"report of 6 training runs .*: (\S+report\.html)$", done.stdout, re.M)
    assert report and report.group(1) == str((tmp_path / "runs" / "report.html").resolve())
    assert len(list((tmp_path / "runs").glob("heatmap-*.png"))) == 2
    served = re.search(r"served RMSE over all 100 engines ([\d.]+) \(the run's own test RMSE: ([\d.]+)\)", done.stdout)
    assert served and abs(float(served.group(1)) - float(served.group(2))) < 0.01, done.stdout
    tracked = re.search(r"(\d+) training runs tracked in MLflow .*'s registry lineage names its run (\w+)", done.stdout)
    assert tracked and int(tracked.group(1)) >= 5, done.stdout[-3000:]
    assert tracked.group(2) in (tmp_path / "runs" / "transfer" / "mlflow.json").read_text()
