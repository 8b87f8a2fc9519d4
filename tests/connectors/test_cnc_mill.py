"""CNC milling: 18 experiments as assets of a runs dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferline.connectors import create_reader


def test_cnc_mill(catalog, shared_data):
    plan = create_reader("cnc-mill")(shared_data / "cnc_mill")
    assert len(plan.roles["sensors"]) == 47  # 48 machine signals less the two text columns, plus the index
    catalog.ingest("cnc", plan)
    m = catalog.manifest("cnc")
    assert m.assets == {"all": 18}
    frame = catalog.read("cnc", columns=["asset", "tool_condition", "M1_CURRENT_FEEDRATE"]).to_pandas()
    assert set(frame.tool_condition) == {"worn", "unworn"}
    assert frame.groupby("asset").tool_condition.nunique().max() == 1


def test_cnc_mill_joins_setpoints_and_outcomes_per_run(catalog, shared_data):
    plan = create_reader("cnc-mill")(shared_data / "cnc_mill")
    assert plan.roles["setpoints"] == ["feedrate", "clamp_pressure"]
    assert plan.roles["outcomes"] == ["tool_condition", "machining_finalized", "passed_visual_inspection"]
    catalog.ingest("cnc", plan)
    frame = catalog.read("cnc", columns=["asset", "feedrate", "clamp_pressure", "passed_visual_inspection",
                                         "material"]).to_pandas()
    per_run = frame.groupby("asset").nunique(dropna=False)
    assert per_run.max().max() == 1  # one value per run
    runs = frame.groupby("asset").first()
    assert runs.loc["experiment_09", ["feedrate", "clamp_pressure"]].tolist() == [15.0, 4.0]
    assert runs.loc["experiment_09", "passed_visual_inspection"] == "no"
    never = frame[frame.asset == "experiment_04"].passed_visual_inspection  # stopped early: never inspected
    assert never.isna().all() and len(never) > 100


def _sample_copy(tmp_path):
    import shutil

    from transferline.sample_data import sample_path

    return Path(shutil.copytree(sample_path("cnc_mill"), tmp_path / "cnc"))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("\n7,aluminum,20,4,worn,no,\n", "\n"),
     "file '{table}', key 'experiment_07.csv.gz': the run table has no row for run '7'"),
    (lambda t: t.replace("15,aluminum,6,3,", "15,aluminum,6,three,"),
     "file '{table}', row 16, field 'clamp_pressure': not a finite number: 'three'"),
    (lambda t: t.replace("12,aluminum,3,3,", "11,aluminum,3,3,"),
     "file '{table}', row 13, field 'No': run '11' appears twice (first on line 12)"),
    (lambda t: t.replace("3,aluminum,6,3,unworn", "3,aluminum,6,3,worn"),
     "row 2, field 'tool_condition': tool_condition 'unworn' here, 'worn' in the run table"),
])
def test_a_bad_run_table_is_named_and_nothing_is_written(catalog, tmp_path, edit, message):
    from transferline.errors import DataError

    from ..conftest import assert_nothing_written

    root = _sample_copy(tmp_path)
    table = root / "train.csv"
    table.write_text(edit(table.read_text()))
    with pytest.raises(DataError) as info:
        catalog.ingest("cnc", create_reader("cnc-mill")(root))
    assert message.format(table=table) in str(info.value)
    assert_nothing_written(catalog, "cnc")


def test_setpoints_flag_and_no_table(catalog, tmp_path, cli):
    root = _sample_copy(tmp_path)
    table = root / "train.csv"
    moved = tmp_path / "trials.csv"
    table.rename(moved)
    plan = create_reader("cnc-mill")(root)
    assert "setpoints" not in plan.roles  # signals alone, as before
    code, out, err = cli("ingest", "cnc-mill", root, "--name", "cnc", "--catalog", catalog.root, "--setpoints", moved,
                         "--quiet")
    assert code == 0, err
    assert catalog.manifest("cnc").roles["setpoints"] == ["feedrate", "clamp_pressure"]
