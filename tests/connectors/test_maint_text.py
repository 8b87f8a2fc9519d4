"""Maintenance text: MaintIE document labels from entity types, MaintNet pairs, generic logs."""

from __future__ import annotations

import pytest

from transferline.connectors import create_reader
from transferline.connectors.maint_text import FAILED_STATE, document_labels
from transferline.errors import DataError

from ..conftest import assert_nothing_written


def test_document_labels_are_type_prefixes():
    assert document_labels(["State/UndesirableState/FailedState", "PhysicalObject/SensingObject"]) == [
        "PhysicalObject", "PhysicalObject/SensingObject", "State", "State/UndesirableState", FAILED_STATE]


def test_maintie(catalog, shared_data):
    catalog.ingest("maintie", create_reader("maintie")(shared_data / "maint_text" / "maintie"))
    frame = catalog.read("maintie").to_pandas()
    assert len(frame) == 1076
    first = frame.iloc[0]
    assert first.text == "<id> air conditioner thermostat not working"
    assert FAILED_STATE in first.labels and "PhysicalObject/EmittingObject" in first.labels
    failed = frame.labels.apply(lambda ls: FAILED_STATE in ls).mean()
    assert 0.1 < failed < 0.9  # both classes present for a failed-or-not task


def test_maintnet(catalog, shared_data):
    catalog.ingest("maintnet", create_reader("maintnet")(shared_data / "maint_text" / "maintnet"))
    frame = catalog.read("maintnet").to_pandas()
    assert len(frame) == 6169
    assert frame.doc_id.iloc[0] == "100001" and frame.paired_text.iloc[1] == "REMOVED & REPLACED FUEL SERVO"


def test_jsonl_log_and_bad_line(catalog, tmp_path):
    good = tmp_path / "log.jsonl"
    good.write_text('{"msg": "pump seal leaking", "tags": ["leak"], "at": "2026-01-02T03:04:05Z"}\n'
                    '{"msg": "replaced bearing", "tags": [], "at": "2026-01-03T00:00:00Z"}\n')
    catalog.ingest("log", create_reader("text")(good, text_col="msg", label_col="tags", time_col="at"))
    frame = catalog.read("log").to_pandas()
    assert frame.labels.iloc[0].tolist() == ["leak"] and str(frame.ts.iloc[1]) == "2026-01-03 00:00:00+00:00"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"msg": "ok"}\n{"msg": oops}\n')
    with pytest.raises(DataError) as err:
        catalog.ingest("bad", create_reader("text")(bad, text_col="msg"))
    assert err.value.row == 2
    with pytest.raises(DataError) as err:
        catalog.ingest("bad", create_reader("text")(good, text_col="message"))
    assert err.value.field == "message"
    assert_nothing_written(catalog, "bad")
