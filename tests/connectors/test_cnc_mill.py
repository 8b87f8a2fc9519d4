"""CNC milling: 18 experiments as assets of a runs dataset."""

from __future__ import annotations

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
