"""C-MAPSS: row and unit counts on the real data, RUL labels, idempotent CLI re-ingest, bad rows."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from transferline.connectors import create_reader
from transferline.errors import DataError

from ..conftest import assert_nothing_written

TRAIN_ROWS = {"FD001": 20631, "FD002": 53759, "FD003": 24720, "FD004": 61249}
TRAIN_UNITS = {"FD001": 100, "FD002": 260, "FD003": 100, "FD004": 249}


def test_full_dataset_counts_via_cli(cli, shared_data, tmp_path):
    cat = tmp_path / "cat"
    code, out, _ = cli("ingest", "cmapss", shared_data / "cmapss", "--name", "cmapss", "--catalog", cat, "--quiet")
    assert code == 0 and "created" in out
    code, out, _ = cli("datasets", "show", "cmapss", "--json", "--catalog", cat)
    manifest = json.loads(out)
    assert manifest["rows"]["train"] == sum(TRAIN_ROWS.values()) == 160359
    assert manifest["assets"]["train"] == sum(TRAIN_UNITS.values()) == 709
    assert manifest["assets"]["test"] == 100 + 259 + 100 + 248
    code, out, _ = cli("ingest", "cmapss", shared_data / "cmapss", "--name", "cmapss", "--catalog", cat, "--quiet")
    assert code == 0 and "unchanged" in out
    again = json.loads(cli("datasets", "show", "cmapss", "--json", "--catalog", cat)[1])
    assert again["content_hash"] == manifest["content_hash"] and again["files"] == manifest["files"]


def test_rul_labels(catalog, sample_cmapss):
    catalog.ingest("c", create_reader("cmapss")(sample_cmapss))
    train = catalog.read("c", split="train").to_pandas()
    engine = train[(train.plant == "FD001") & (train.asset == "1")].sort_values("step")
    assert engine.rul.iloc[-1] == 0 and engine.rul.iloc[0] == len(engine) - 1
    test = catalog.read("c", split="test").to_pandas()
    truth = np.loadtxt(gzip.open(sample_cmapss / "RUL_FD001.txt.gz"))
    last = test.sort_values("step").groupby("asset").tail(1).set_index("asset").rul
    assert [last[str(u)] for u in (1, 2, 100)] == [truth[0], truth[1], truth[99]]


@pytest.mark.parametrize("bad_line,expect", [("1 1 0.1 0.2", "expected 26 values, found 4"),
                                             ("1 2 " + "x " * 24, "not a number: 'x'")])
def test_malformed_row_is_refused(catalog, tmp_path, sample_cmapss, bad_line, expect):
    src = tmp_path / "src"
    src.mkdir()
    lines = gzip.open(sample_cmapss / "train_FD001.txt.gz", "rt").read().splitlines()[:10]
    lines.insert(4, bad_line)
    (src / "train_FD001.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=expect) as err:
        catalog.ingest("c", create_reader("cmapss")(src))
    assert err.value.row == 5 and err.value.file.endswith("train_FD001.txt")
    assert_nothing_written(catalog, "c")


def test_nan_is_refused(catalog, tmp_path, sample_cmapss):
    src = tmp_path / "src"
    src.mkdir()
    lines = gzip.open(sample_cmapss / "train_FD001.txt.gz", "rt").read().splitlines()[:10]
    fields = lines[2].split()
    fields[7] = "nan"
    lines[2] = " ".join(fields)
    (src / "train_FD001.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        catalog.ingest("c", create_reader("cmapss")(src))
    assert (err.value.row, err.value.field) == (3, "s3")
    assert_nothing_written(catalog, "c")


def test_missing_rul_file(tmp_path, sample_cmapss):
    src = tmp_path / "src"
    src.mkdir()
    (src / "test_FD001.txt.gz").write_bytes((sample_cmapss / "test_FD001.txt.gz").read_bytes())
    with pytest.raises(DataError, match="RUL_FD001"):
        create_reader("cmapss")(src)
