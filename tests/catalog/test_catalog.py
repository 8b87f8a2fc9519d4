"""The catalog: atomic writes, idempotent re-ingest, appends, manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest

from transferline.catalog import Catalog, IngestPlan, Part, resolve_root
from transferline.errors import CatalogError, DataError

from ..conftest import assert_nothing_written


def _runs(split: str, plant: str, assets: list[str], value: float = 1.0) -> pa.Table:
    n = len(assets)
    return pa.table({"split": [split] * n, "plant": [plant] * n, "asset": assets, "step": pa.array(range(n), pa.int64()),
                     "s1": [value] * n})


def _plan(*parts: tuple[str, str, pa.Table]) -> IngestPlan:
    return IngestPlan(kind="runs", reader="test", source="memory",
                      parts=[Part(key=k, digest=d, file=f"{k}.csv", load=lambda t=t: t) for k, d, t in parts],
                      roles={"sensors": ["s1"]}, domain_columns=["plant"])


def test_create_then_reingest_is_unchanged(catalog):
    plan = _plan(("a", "d1", _runs("train", "P1", ["1", "1", "2"])), ("b", "d2", _runs("test", "P1", ["3"])))
    first = catalog.ingest("ds", plan)
    assert first.status == "created" and first.new_rows == 4
    m = catalog.manifest("ds")
    assert m.rows == {"test": 1, "train": 3} and m.assets == {"test": 1, "train": 2}
    files_before = sorted(p.name for p in (catalog.root / "ds").rglob("*.parquet"))
    second = catalog.ingest("ds", plan)
    assert second.status == "unchanged" and second.new_rows == 0
    assert sorted(p.name for p in (catalog.root / "ds").rglob("*.parquet")) == files_before
    assert catalog.manifest("ds").content_hash == m.content_hash
    assert catalog.read("ds").num_rows == 4


def test_append_adds_new_parts_only(catalog):
    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1"]))))
    more = _plan(("a", "d1", _runs("train", "P1", ["1"])), ("b", "d2", _runs("train", "P2", ["7", "8"])))
    with pytest.raises(CatalogError, match="--append"):
        catalog.ingest("ds", more)
    result = catalog.ingest("ds", more, append=True)
    assert result.status == "appended" and result.new_rows == 2
    table = catalog.read("ds")
    assert sorted(table.column("plant").to_pylist()) == ["P1", "P2", "P2"]
    assert (catalog.root / "ds" / "data" / "split=train" / "plant=P2").is_dir()


def test_a_view_of_units_reads_their_rows_from_the_files_that_hold_them(catalog, monkeypatch):
    import pyarrow.dataset as ds

    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1", "1", "2"])),
                               ("b", "d2", _runs("train", "P2", ["1", "7"])), ("c", "d3", _runs("test", "P2", ["8"]))))
    opened = []
    real = ds.dataset
    monkeypatch.setattr(ds, "dataset", lambda files, **kw: opened.append(list(files)) or real(files, **kw))
    view = catalog.of_units({"P2/1", "P2/8"})
    table = view.read("ds", columns=["plant", "asset", "split"])
    assert sorted(zip(*table.to_pydict().values())) == [("P2", "1", "train"), ("P2", "8", "test")]  # not P1/1
    assert all("plant=P1" not in f for f in opened[-1])  # P1's files are not opened
    assert view.read("ds", split="train").column("asset").to_pylist() == ["1"]
    assert catalog.of_units({"P9/1"}).read("ds", columns=["s1"]).num_rows == 0
    assert catalog.read("ds").num_rows == 6  # the catalog itself still reads every row


def test_changed_source_needs_replace(catalog):
    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1"]))))
    changed = _plan(("a", "d9", _runs("train", "P1", ["1", "2"], value=5.0)))
    with pytest.raises(CatalogError, match="has changed"):
        catalog.ingest("ds", changed, append=True)
    result = catalog.ingest("ds", changed, replace=True)
    assert result.status == "replaced"
    assert catalog.read("ds").column("s1").to_pylist() == [5.0, 5.0]


def test_failure_in_a_later_part_leaves_nothing(catalog):
    def broken():
        raise DataError("boom", file="b.csv", row=3)

    plan = _plan(("a", "d1", _runs("train", "P1", ["1"])))
    plan.parts = [*plan.parts, Part(key="b", digest="d2", file="b.csv", load=broken)]
    with pytest.raises(DataError, match="boom"):
        catalog.ingest("ds", plan)
    assert_nothing_written(catalog, "ds")
    assert list((catalog.root / ".tmp").iterdir()) == []


def test_failed_append_keeps_old_version(catalog):
    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1"]))))
    before = (catalog.root / "ds" / "manifest.json").read_text()
    bad = _runs("train", "P2", ["2"]).set_column(4, "s1", pa.array([float("nan")]))
    with pytest.raises(DataError, match="NaN"):
        catalog.ingest("ds", _plan(("b", "d2", bad)), append=True)
    assert (catalog.root / "ds" / "manifest.json").read_text() == before
    assert catalog.read("ds").num_rows == 1
    assert len(list((catalog.root / "ds").rglob("*.parquet"))) == 1


def test_kind_schema_is_enforced(catalog):
    wrong = _runs("train", "P1", ["1"]).drop_columns(["step"])
    with pytest.raises(DataError) as err:
        catalog.ingest("ds", _plan(("a", "d1", wrong)))
    assert err.value.field == "step" and err.value.file == "a.csv"
    typed = _runs("train", "P1", ["1"]).set_column(3, "step", pa.array([1.5]))
    with pytest.raises(DataError, match="int64"):
        catalog.ingest("ds", _plan(("a", "d1", typed)))
    assert_nothing_written(catalog, "ds")


def test_kind_mismatch_and_bad_names(catalog):
    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1"]))))
    plan = _plan(("b", "d2", _runs("train", "P1", ["1"])))
    plan.kind = "waveforms"
    with pytest.raises(CatalogError, match="kind"):
        catalog.ingest("ds", plan, append=True)
    for name in ("", ".hidden", "a/b", "x y"):
        with pytest.raises(CatalogError, match="dataset name"):
            catalog.ingest(name, _plan(("a", "d1", _runs("train", "P1", ["1"]))))


def test_manifest_fields(catalog):
    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1", "2"]))))
    data = json.loads((catalog.root / "ds" / "manifest.json").read_text())
    for key in ("name", "kind", "schema_version", "rows", "assets", "bytes", "source", "created", "content_hash",
                "domain_columns", "files", "sources", "arrow_schema"):
        assert key in data, key
    assert data["bytes"] == sum(p.stat().st_size for p in (catalog.root / "ds").rglob("*.parquet"))


def test_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLINE_HOME", str(tmp_path / "home"))
    assert resolve_root() == (tmp_path / "home").resolve()
    assert resolve_root(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    monkeypatch.delenv("TRANSFERLINE_HOME")
    monkeypatch.chdir(tmp_path)
    assert Catalog().root == (tmp_path / "transferline-data").resolve()


def test_unknown_dataset_names_known_ones(catalog):
    catalog.ingest("ds", _plan(("a", "d1", _runs("train", "P1", ["1"]))))
    with pytest.raises(CatalogError, match="datasets: ds"):
        catalog.manifest("nope")
    with pytest.raises(CatalogError, match="splits: train"):
        catalog.read("ds", split="test")


def test_compact_merges_small_files_keeps_rows_extra_and_source_keys(catalog):
    import pyarrow as pa

    from transferline.catalog import IngestPlan, Part
    from transferline.catalog.schemas import KINDS

    def part(key: str, values: list[float]) -> Part:
        n = len(values)
        table = pa.Table.from_arrays(
            [pa.array(["train"] * n), pa.array(["P"] * n), pa.array(["A"] * n), pa.array(["t"] * n),
             pa.array(range(len(key) * 100, len(key) * 100 + n), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
             pa.array(values, pa.float64()), pa.array([0] * n, pa.uint32())], schema=KINDS["timeseries"].schema)
        return Part(key, hashlib.sha256(key.encode()).hexdigest(), "mem", lambda: table)

    for i, key in enumerate(["file-a", "opcua/s/1", "opcua/s/22"]):
        catalog.ingest("ts", IngestPlan("timeseries", "t", "mem", [part(key, [float(i), float(i) + 0.5])],
                                        extra={"opcua": {"watermarks": {"x": i}}}), append=True)
    before = catalog.read("ts").to_pydict()
    assert len(catalog.manifest("ts").files) == 3
    removed = catalog.compact("ts", merge_sources="opcua/")
    m = catalog.manifest("ts")
    assert removed == 2 and len(m.files) == 1
    assert catalog.read("ts").to_pydict() == before
    assert m.extra == {"opcua": {"watermarks": {"x": 2}}}
    keys = [s.key for s in m.sources]
    assert keys[0] == "file-a" and len(keys) == 2 and keys[1].startswith("opcua/compacted-")
    assert sum(s.rows for s in m.sources) == 6
    listed = {Path(m.files[0].path).name}
    on_disk = {p.name for p in (catalog.root / "ts").rglob("*.parquet")}
    assert listed <= on_disk and len(on_disk) == 4  # the replaced files wait out a grace period for readers
    catalog._collect_garbage("ts", [], grace_s=0.0)
    assert {p.name for p in (catalog.root / "ts").rglob("*.parquet")} == listed
    again = catalog.ingest("ts", IngestPlan("timeseries", "t", "mem", [part("file-a", [0.0, 0.5])]), append=True)
    assert again.status == "unchanged"  # the file source is still known after compaction
    assert catalog.compact("ts") == 0
