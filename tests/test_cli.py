"""The command line as a user runs it: exit codes, messages, nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO


def _run(*args, catalog):
    env = {**os.environ, "TRANSFERLINE_HOME": str(catalog)}
    return subprocess.run([sys.executable, "-m", "transferline.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def test_ingest_list_show(tmp_path, sample_cmapss):
    cat = tmp_path / "cat"
    done = _run("ingest", "cmapss", sample_cmapss, "--name", "c", "--quiet", catalog=cat)
    assert done.returncode == 0, done.stderr
    assert "created (87,486 new rows)" in done.stdout
    listed = _run("datasets", "list", catalog=cat)
    assert listed.returncode == 0 and listed.stdout.startswith("c ") and "87,486 rows" in listed.stdout
    shown = _run("datasets", "show", "c", "--json", catalog=cat)
    assert json.loads(shown.stdout)["rows"] == {"test": 13096, "train": 74390}


def test_malformed_csv_exits_nonzero_and_writes_nothing(tmp_path):
    cat = tmp_path / "cat"
    src = tmp_path / "bad.csv"
    src.write_text("step,unit,a\n1,u1,1.0\n2,u1,2.0,7\n")
    done = _run("ingest", "csv", src, "--name", "bad", "--time-col", "step", "--asset-col", "unit", catalog=cat)
    assert done.returncode == 2
    assert f"file '{src}', row 3" in done.stderr and "malformed CSV row" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (cat / "bad").exists()


def test_option_that_does_not_apply(tmp_path, sample_cmapss):
    done = _run("ingest", "cmapss", sample_cmapss, "--name", "c", "--time-col", "t", catalog=tmp_path / "cat")
    assert done.returncode == 2 and "--time-col does not apply to format 'cmapss'" in done.stderr


def test_unknown_dataset(tmp_path):
    done = _run("datasets", "show", "nope", catalog=tmp_path / "cat")
    assert done.returncode == 2 and "no dataset 'nope'" in done.stderr
