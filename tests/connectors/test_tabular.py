"""Generic CSV / Parquet historian exports: long and wide layouts, mappings, bad rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transferline.connectors import create_reader
from transferline.errors import DataError

from ..conftest import assert_nothing_written

LONG = """time,machine,tag,val,q
2026-01-01T00:00:00Z,pump1,temp,20.5,0
2026-01-01T00:00:01Z,pump1,temp,20.6,0
2026-01-01T00:00:00Z,pump2,vib,0.01,0
2026-01-01T00:00:01Z,pump2,vib,nan,2156724224
"""


def test_long_csv_to_timeseries(catalog, tmp_path):
    (tmp_path / "h.csv").write_text(LONG)
    plan = create_reader("csv")(tmp_path / "h.csv", layout="long", time_col="time", asset_col="machine",
                                signal_col="tag", value_col="val", quality_col="q", plant="north")
    catalog.ingest("h", plan)
    m = catalog.manifest("h")
    assert m.kind == "timeseries" and m.rows == {"all": 4} and m.assets == {"all": 2}
    table = catalog.read("h")
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert (catalog.root / "h" / "data" / "split=all" / "plant=north" / "asset=pump1").is_dir()


def test_nan_with_good_quality_is_refused(catalog, tmp_path):
    (tmp_path / "h.csv").write_text(LONG.replace(",2156724224", ",0"))
    plan = create_reader("csv")(tmp_path / "h.csv", layout="long", time_col="time", asset_col="machine",
                                signal_col="tag", value_col="val", quality_col="q")
    with pytest.raises(DataError) as err:
        catalog.ingest("h", plan)
    assert (err.value.row, err.value.field) == (5, "value")
    assert_nothing_written(catalog, "h")


def test_wide_csv_with_timestamps(catalog, tmp_path):
    (tmp_path / "w.csv").write_text("ts,unit,a,b,state\n2026-01-01 00:00:02,u1,1,2,ok\n"
                                    "2026-01-01 00:00:01,u1,3,4,ok\n2026-01-01 00:00:01,u2,5,6,bad\n")
    plan = create_reader("csv")(tmp_path / "w.csv", time_col="ts", asset_col="unit", label_cols=["state"])
    catalog.ingest("w", plan)
    frame = catalog.read("w").to_pandas().sort_values(["asset", "step"])
    assert frame.step.tolist() == [0, 1, 0] and frame.a.tolist() == [3.0, 1.0, 5.0]
    assert "ts" in frame and frame.state.tolist() == ["ok", "ok", "bad"]


def test_malformed_csv_row(catalog, tmp_path):
    (tmp_path / "w.csv").write_text("step,unit,a\n1,u1,1.0\n2,u1,2.0,9\n")
    with pytest.raises(DataError, match="malformed CSV row") as err:
        catalog.ingest("w", create_reader("csv")(tmp_path / "w.csv", time_col="step", asset_col="unit"))
    assert err.value.row == 3 and err.value.file.endswith("w.csv")
    assert_nothing_written(catalog, "w")


@pytest.mark.parametrize("text,row,field", [("step,unit,a\n1,u1,1.0\n2,u1,inf\n", 3, "a"),
                                            ("step,unit,a\n1,u1,1.0\n2,u1,abc\n", 3, "a"),
                                            ("step,unit,a\n1,u1,1.0\n2,,2.0\n", 3, "unit")])
def test_bad_values_name_row_and_field(catalog, tmp_path, text, row, field):
    (tmp_path / "w.csv").write_text(text)
    with pytest.raises(DataError) as err:
        catalog.ingest("w", create_reader("csv")(tmp_path / "w.csv", time_col="step", asset_col="unit",
                                                 value_cols=["a"]))
    assert (err.value.row, err.value.field) == (row, field)
    assert_nothing_written(catalog, "w")


def test_wrong_mapping_names_the_column(catalog, tmp_path):
    (tmp_path / "w.csv").write_text("step,unit,a\n1,u1,1.0\n")
    with pytest.raises(DataError, match=r"columns: \['step', 'unit', 'a'\]") as err:
        catalog.ingest("w", create_reader("csv")(tmp_path / "w.csv", time_col="time", asset_col="unit"))
    assert err.value.field == "time"
    assert_nothing_written(catalog, "w")


def test_parquet_folder(catalog, tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"step": [1, 2], "unit": [f"u{i}"] * 2, "x": [0.5, 0.25]}), folder / f"{i}.parquet")
    catalog.ingest("p", create_reader("parquet")(folder, time_col="step", asset_col="unit"))
    assert catalog.manifest("p").assets == {"all": 2}
    (folder / "2.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read Parquet") as err:
        catalog.ingest("p", create_reader("parquet")(folder, time_col="step", asset_col="unit"), append=True)
    assert err.value.file.endswith("2.parquet")
    assert catalog.manifest("p").assets == {"all": 2}
