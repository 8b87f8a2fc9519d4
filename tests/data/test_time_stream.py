"""Inputs joined by time, streamed, are the inputs joined in memory: each image with the sensor
window its machine recorded up to it and the nearest maintenance note, on the vendored inspection
line (NEU images, CNC drive signals as a historian export, MaintIE notes). The same events in train
and validation, the same statistics, and read tasks that yield the same joined samples."""

from __future__ import annotations

import numpy as np
import pytest

from ..train.test_time_join import _config, line_catalog_at

SOURCE = ["data.source.domains=[line1]", "data.source.split=all", "data.val_fraction=0.25"]


@pytest.fixture(scope="module")
def line_catalog(tmp_path_factory):
    return line_catalog_at(tmp_path_factory.mktemp("line"))


def _streamed(plan, numbers) -> dict[str, np.ndarray]:
    """Every block of the read tasks over ``numbers``, concatenated and put back in event order."""
    from transferline.data.time_stream import _cut_time_joined

    groups = plan.groups(numbers, plan.events.samples_per_task)
    blocks = [b for i, g in enumerate(groups)
              for b in _cut_time_joined({"task": [i], "numbers": [g.tolist()]}, plan=plan, seed=0, shuffle=True)]
    out = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    order = np.argsort(out["number"])
    return {k: v[order] for k, v in out.items()}


@pytest.mark.parametrize("per_task", [1, 5, 10**6])
def test_read_tasks_join_exactly_the_in_memory_samples(line_catalog, per_task):
    from transferline.train import prepare_data
    from transferline.train.data import plan_source

    memory = prepare_data(_config(line_catalog, *SOURCE), line_catalog)
    plan, train, val = plan_source(_config(line_catalog, *SOURCE, "data.streaming.enabled=true",
                                           f"data.streaming.samples_per_task={per_task}"), line_catalog)
    groups = plan.groups(train, per_task)
    units = [set(plan.events.index.units[g].tolist()) for g in groups]
    assert all(not (a & b) for i, a in enumerate(units) for b in units[i + 1:])  # a unit's events in one task
    for numbers, expected in ((train, memory.source_train), (val, memory.source_val)):
        assert len(numbers) == len(expected)
        got, want = _streamed(plan, numbers), expected.get(np.arange(len(expected)))
        np.testing.assert_array_equal(got["number"], numbers)
        for name in plan.names:
            np.testing.assert_allclose(got[f"x_{name}"], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(got["present"], want["present"])
        assert 0 < got["present"][:, 1].sum() < len(numbers) or len(numbers) < 8  # some windows absent, some not
        np.testing.assert_array_equal(got["y"], expected.labels)
        np.testing.assert_array_equal(got["domain"], expected.domains)
    got, want = plan.input_spec().to_dict(), memory.input_spec().to_dict()
    assert list(got) == list(want) == ["photo", "drives", "note"]
    norm, want_norm = got["drives"].pop("normalizer"), want["drives"].pop("normalizer")
    assert norm["groups"] == want_norm["groups"]
    for field in ("mean", "std"):
        np.testing.assert_allclose(norm[field], want_norm[field], rtol=1e-6, err_msg=field)
    assert got == want


def test_the_test_and_target_sets_are_standardized_as_in_memory(line_catalog):
    """Streaming covers the source sets; the target and test sets are read into memory, standardized
    with the statistics the driver fitted over the training events."""
    from transferline.train import prepare_data
    from transferline.train.data import plan_source

    memory = prepare_data(_config(line_catalog, *SOURCE), line_catalog)
    config = _config(line_catalog, *SOURCE, "data.streaming.enabled=true")
    plan, train, val = plan_source(config, line_catalog)  # the driver's side, without starting Ray
    streams = {"plan": plan, "train_keys": train, "val_keys": val, "source_train": None, "source_val": None}
    streamed = prepare_data(config, line_catalog, streams)
    for set_name in ("target_labelled", "test"):
        a, b = getattr(memory, set_name), getattr(streamed, set_name)
        np.testing.assert_allclose(b.get(np.arange(len(b)))["drives"], a.get(np.arange(len(a)))["drives"],
                                   rtol=1e-5, atol=1e-5, err_msg=set_name)
    assert streamed.classes == memory.classes and not streamed.multi_label


def test_an_input_only_machines_without_training_events_recorded_streams_as_in_memory(line_catalog, tmp_path):
    """Notes of a fifth machine of the line, which took no image: in memory the input is read, kept in
    the spec and absent from every sample; streamed the same (it was refused: no training unit had it)."""
    import pandas as pd

    from transferline.connectors import create_reader
    from transferline.train import prepare_data
    from transferline.train.data import plan_source

    notes = pd.read_csv(line_catalog.root.parent / "src" / "notes.csv").assign(machine="mill_e")
    notes.to_csv(tmp_path / "notes.csv", index=False)
    line_catalog.ingest("notes_mill_e", create_reader("text")(tmp_path / "notes.csv", time_col="time",
                                                              asset_col="machine", plant="line1"), progress=False)
    elsewhere = [*SOURCE, "data.inputs.note.dataset=notes_mill_e"]
    memory = prepare_data(_config(line_catalog, *elsewhere), line_catalog)
    plan, train, val = plan_source(_config(line_catalog, *elsewhere, "data.streaming.enabled=true"), line_catalog)
    got, want = _streamed(plan, train), memory.source_train.get(np.arange(len(memory.source_train)))
    np.testing.assert_array_equal(got["present"], want["present"])
    assert not got["present"][:, 2].any() and got["present"][:, 1].any()  # the note absent, the drives not
    np.testing.assert_array_equal(got["x_note"], want["note"])
    assert plan.input_spec().to_dict()["note"] == memory.input_spec().to_dict()["note"]


def test_an_input_no_training_event_reaches_is_named(line_catalog):
    from transferline.errors import DataError
    from transferline.train.data import plan_source

    with pytest.raises(DataError, match="input 'drives': no source training sample has this input"):
        plan_source(_config(line_catalog, *SOURCE, "data.streaming.enabled=true", "data.join.tolerance_s=0"),
                    line_catalog)


def test_source_domains_without_events_are_named(line_catalog):
    from transferline.errors import TransferlineError
    from transferline.train.data import plan_source

    config = _config(line_catalog, "data.source.domains=[line9]", "data.source.split=all",
                     "data.streaming.enabled=true")
    with pytest.raises(TransferlineError, match="config data.inputs.photo \\(dataset 'line_images'\\): no samples"):
        plan_source(config, line_catalog)


def test_events_without_times_are_refused_by_name(line_catalog):
    from transferline.connectors import create_reader
    from transferline.data import get_data_spec
    from transferline.data.time_stream import plan_time_joined
    from transferline.errors import DataError
    from transferline.sample_data import sample_path

    line_catalog.ingest("untimed", create_reader("images")(sample_path("neu") / "IMAGES", label_level=0),
                        progress=False)  # the same images, ingested from their folders: no times
    with pytest.raises(DataError, match="'photo'.*120 of its 120 samples have no time"):
        plan_time_joined(line_catalog, anchor="photo", names=["photo"], anchor_spec=get_data_spec("image"),
                         anchor_dataset="untimed", sources={}, readers={}, group_norm=[], tolerance_s=1.0,
                         split=None, domains=None, classes=None)
