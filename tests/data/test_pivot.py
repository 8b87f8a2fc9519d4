"""timeseries (one row per value) → runs (one row per asset and step)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from transferline.catalog import IngestPlan, Part
from transferline.catalog.schemas import KINDS
from transferline.data import timeseries_to_runs
from transferline.errors import DataError


def _timeseries(catalog, rows):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    cols = list(zip(*rows))
    table = pa.Table.from_arrays(
        [pa.array(["train"] * len(rows)), pa.array(["P"] * len(rows)), pa.array(cols[0]), pa.array(cols[1]),
         pa.array([t0 + timedelta(seconds=s) for s in cols[2]], pa.timestamp("us", tz="UTC")),
         pa.array(cols[3], pa.float64()), pa.array(cols[4], pa.uint32())], schema=KINDS["timeseries"].schema)
    catalog.ingest("ts", IngestPlan("timeseries", "test", "mem", [Part("k", "d", "mem", lambda: table)]))


def test_pivot_makes_one_row_per_asset_and_time_and_skips_bad_values(catalog):
    _timeseries(catalog, [("A", "temp", 0, 1.0, 0), ("A", "rpm", 0, 10.0, 0), ("A", "temp", 1, 2.0, 0),
                          ("A", "rpm", 1, 20.0, 0), ("B", "temp", 0, 3.0, 0), ("B", "rpm", 0, 30.0, 0),
                          ("B", "temp", 5, 9.9, 0x80320000)])
    result = timeseries_to_runs(catalog, "ts", "runs")
    runs = catalog.read("runs").to_pandas().sort_values(["asset", "step"])
    assert result.manifest.kind == "runs"
    assert runs[["asset", "step", "temp", "rpm"]].values.tolist() == [["A", 1, 1.0, 10.0], ["A", 2, 2.0, 20.0],
                                                                       ["B", 1, 3.0, 30.0]]
    # each row keeps its source time (windows join images and texts by it)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert [t.to_pydatetime() for t in runs["ts"]] == [t0, t0 + timedelta(seconds=1), t0]


def test_pivot_names_the_first_incomplete_row(catalog):
    _timeseries(catalog, [("A", "temp", 0, 1.0, 0), ("A", "rpm", 0, 10.0, 0), ("A", "temp", 1, 2.0, 0)])
    with pytest.raises(DataError, match="no value of 'rpm' at .*1 incomplete rows"):
        timeseries_to_runs(catalog, "ts", "runs")
    assert not catalog.exists("runs")
