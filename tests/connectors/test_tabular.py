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


WIDE_RUNS = """t,run,spindle,current
0,r1,1000,1.5
1,r1,1010,1.6
0,r2,1500,2.1
1,r2,1490,2.2
2,r2,1510,2.0
"""
RUN_TABLE = """run_id,speed,coolant,scrap,roughness
r1,1000,0.5,no,0.8
r2,1500,0.2,yes,
"""


def test_wide_csv_with_a_run_table_feeds_the_process_view(catalog, tmp_path, cli):
    from transferline.process import load_process_data

    (tmp_path / "signals.csv").write_text(WIDE_RUNS)
    (tmp_path / "runs.csv").write_text(RUN_TABLE)
    code, _, err = cli("ingest", "csv", tmp_path / "signals.csv", "--name", "line", "--catalog", catalog.root,
                       "--time-col", "t", "--asset-col", "run", "--run-table", tmp_path / "runs.csv", "--run-key",
                       "run_id", "--setpoint-cols", "speed,coolant", "--quiet")
    assert code == 0, err
    roles = catalog.manifest("line").roles
    assert roles["setpoints"] == ["speed", "coolant"] and roles["outcomes"] == ["scrap", "roughness"]
    data = load_process_data(catalog, "line")
    assert data.runs == ["r1", "r2"] and data.X.tolist() == [[1000.0, 0.5], [1500.0, 0.2]]
    assert [(o.name, o.kind, o.positive) for o in data.outcomes] == [("scrap", "binary", "yes"),
                                                                      ("roughness", "numeric", None)]
    assert data.Y[0].tolist() == [0.0, 0.8] and data.Y[1, 0] == 1.0 and data.Y[1, 1] != data.Y[1, 1]  # NaN


def test_a_run_the_table_lacks_is_named(catalog, tmp_path):
    (tmp_path / "signals.csv").write_text(WIDE_RUNS)
    (tmp_path / "runs.csv").write_text(RUN_TABLE.replace("r2,1500,0.2,yes,\n", ""))
    plan = create_reader("csv")(tmp_path / "signals.csv", time_col="t", asset_col="run",
                                run_table=str(tmp_path / "runs.csv"), run_key="run_id")
    with pytest.raises(DataError, match="the run table has no row for run 'r2'") as err:
        catalog.ingest("line", plan)
    assert err.value.file == str(tmp_path / "runs.csv") and err.value.key == "signals.csv"
    assert_nothing_written(catalog, "line")
