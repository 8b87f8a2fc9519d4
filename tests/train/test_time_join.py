"""Inputs of different kinds joined by plant, asset and time: inspection images (the events that
are the samples) with the sensor windows their machine recorded up to each image and the
maintenance note written nearest to it, within a tolerance.

The fixture is real data in real formats, only the times and machines are assigned: four CNC
milling experiments' drive signals as four machines' historian export (CSV, one row per 100 ms),
NEU steel-surface images listed in a manifest with when and where each was taken, and MaintIE
work orders as a CSV log with times and assets (all vendored). The join is checked against
pandas' ``merge_asof``; a fused run trains, registers and serves any subset of the three inputs as
it answered in training (two Ray Train workers: ``test_ray_train.py``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from transferline.data.multimodal import join_by_time
from transferline.errors import DataError, TransferlineError
from transferline.sample_data import NEU_CLASSES

from ..conftest import REPO, answer_with

WINDOW, TOLERANCE_S = 16, 1.0
INPUTS = ("photo", "drives", "note")


def line_catalog_at(root):
    """The catalog ``line``: ``line_signals`` (runs with times), ``line_images`` (events) and ``line_notes``."""
    from transferline.catalog import Catalog
    from transferline.sample_data import ingest_inspection_line

    catalog = Catalog(root / "catalog")
    ingest_inspection_line(catalog, root / "src", progress=False)
    return catalog


@pytest.fixture(scope="module")
def line_catalog(tmp_path_factory):
    return line_catalog_at(tmp_path_factory.mktemp("line"))


CONFIG = REPO / "examples" / "configs" / "fusion_inspection.yaml"


def overrides(catalog, *extra) -> list[str]:
    """The example's fused run over the line catalog, small: 32-pixel images, 16-token notes, two epochs."""
    return [f"catalog={catalog.root}", "progress=false", "tracking.mlflow=false", "data.spec_options.size=[32, 32]",
            "data.inputs.note.spec_options.max_length=16",
            "encoder.options.encoders.photo={name: timm/tf_efficientnet_lite0}", "epochs=2", *extra]


def _config(catalog, *extra):
    from transferline.train import load_config

    return load_config(CONFIG, overrides(catalog, *extra))


def _expected(catalog) -> pd.DataFrame:
    """Each image with the time of the window end and the note ``merge_asof`` picks for it."""
    images = catalog.read("line_images", columns=["asset", "ts", "source"]).to_pandas()
    signals = catalog.read("line_signals", columns=["asset", "step", "ts"]).to_pandas()
    notes = catalog.read("line_notes", columns=["asset", "ts", "doc_id"]).to_pandas()
    signals = signals.sort_values(["asset", "step"])
    signals = signals[signals.groupby("asset").cumcount() >= WINDOW - 1]  # rows that end a whole window
    tolerance = pd.Timedelta(seconds=TOLERANCE_S)
    images = images.sort_values("ts").reset_index(drop=True)
    out = pd.merge_asof(images, signals.rename(columns={"ts": "window_end"}).sort_values("window_end"),
                        left_on="ts", right_on="window_end", by="asset", direction="backward", tolerance=tolerance)
    notes = notes.rename(columns={"ts": "note_ts"}).sort_values("note_ts")
    return pd.merge_asof(out, notes, left_on="ts", right_on="note_ts", by="asset", direction="nearest",
                         tolerance=tolerance)


def test_each_image_joins_the_window_ending_before_it_and_the_nearest_note(line_catalog):
    from transferline.train import prepare_data

    config = _config(line_catalog, "data.test.holdout=null", "data.test.split=all", "data.target.per_class=0",
                     "data.target.labelled_units=0", "data.source.domains=[line1]", "data.source.split=all",
                     "data.val_fraction=0.25")
    data = prepare_data(config, line_catalog)
    parts = _parts(line_catalog)
    joined = join_by_time(parts, anchor="photo", tolerance_s=TOLERANCE_S)
    assert joined.names == list(INPUTS) and len(joined) == 48

    expected = _expected(line_catalog).set_index("source")
    photo, drives, note = (joined.parts[n] for n in INPUTS)
    names = [photo.names[r] for r in joined.rows[:, 0]]
    want = expected.loc[names]
    # the window: the latest whole one ending at or before the image, on the image's machine
    has_window = joined.present[:, 1]
    assert has_window.tolist() == want["window_end"].notna().tolist()
    assert 0 < has_window.sum() < len(joined)  # some images were taken outside any window's reach
    ends = drives.end_times()[joined.rows[has_window, 1]]
    np.testing.assert_array_equal(ends, want["window_end"][has_window].dt.as_unit("us").astype("int64").to_numpy())
    machines = np.asarray(drives.asset_names, dtype=object)[drives.assets[joined.rows[has_window, 1]]]
    assert machines.tolist() == ("line1/" + want["asset"][has_window]).tolist()
    # the note: the nearest one on that machine, within the tolerance
    has_note = joined.present[:, 2]
    assert has_note.tolist() == want["doc_id"].notna().tolist() and 0 < has_note.sum() < len(joined)
    assert [note.names[r] for r in joined.rows[has_note, 2]] == want["doc_id"][has_note].tolist()
    # labels are the images' own; the inputs come out in their own shapes and dtypes, zeros where absent
    assert [NEU_CLASSES[y] for y in joined.labels] == [n.rsplit("_", 1)[0] for n in names]
    batch = joined.get(np.arange(6))
    assert batch["photo"].shape == (6, 3, 32, 32) and batch["drives"].shape == (6, 4, WINDOW)
    assert batch["note"].dtype == np.int64 and batch["note"].shape == (6, 16)
    first_absent = int(np.flatnonzero(~joined.present[:, 1])[0])
    assert not joined.get([first_absent])["drives"].any()

    # inner: only images every input reached; prepare_data reads the same join
    inner = join_by_time(parts, anchor="photo", tolerance_s=TOLERANCE_S, how="inner")
    assert len(inner) == int(joined.present.all(axis=1).sum()) and inner.present.all()
    read = [data.source_train, data.source_val]
    assert sum(len(d) for d in read) == 48
    np.testing.assert_array_equal(sum(d.present.sum(axis=0) for d in read), joined.present.sum(axis=0))
    # the inputs other than the anchor are read whole, once, and shared by every set of the run
    assert data.test.parts["drives"] is data.source_train.parts["drives"]
    assert data.test.parts["note"] is data.source_train.parts["note"]


def test_an_empty_set_names_the_inputs_datasets(line_catalog):
    from transferline.train import prepare_data

    config = _config(line_catalog, "data.test.holdout=null", "data.target.per_class=0", "data.source.domains=[line1]",
                     "data.source.split=all", "data.val_fraction=0.01")
    with pytest.raises(TransferlineError, match="the validation set has no samples; check data.source \\(the inputs' "
                                                "datasets \\['line_images', 'line_notes', 'line_signals'\\], split 'all'"):
        prepare_data(config, line_catalog)


def test_a_zero_tolerance_joins_only_what_was_recorded_at_that_moment(line_catalog):
    """Images moved to the exact end of a window join it at tolerance 0; one microsecond later they
    need a microsecond of tolerance; one microsecond earlier they reach back to the window before
    (100 ms earlier), given the tolerance."""
    from dataclasses import replace

    parts = _parts(line_catalog)
    photo, drives = parts["photo"], parts["drives"]
    ends = drives.end_times()
    units = np.asarray(drives.asset_names, dtype=object)[drives.assets]
    target = np.array([np.flatnonzero(units == u)[10] for u in photo.units])  # each machine's 11th window
    absent = np.full(len(target), -1)
    for shift, tolerance, expected in ((0, 0, target), (1, 0, absent), (1, 1e-6, target), (-1, 0, absent),
                                       (-1, 0.1, target - 1)):
        moved = replace(photo, times=ends[target] + shift)
        joined = join_by_time({**parts, "photo": moved}, anchor="photo", tolerance_s=tolerance)
        np.testing.assert_array_equal(joined.rows[:, 1], expected, err_msg=f"shift {shift} µs, tolerance {tolerance} s")


def _parts(catalog, *extra):
    from transferline.data import get_data_spec
    from transferline.train.data import input_sources, load_joined_input

    config = _config(catalog, *extra)
    sources = input_sources(config["data"], get_data_spec("image", size=[32, 32]))
    return {name: load_joined_input(name, source, catalog, anchor=name == "photo", split="all", domains=["line1"])
            for name, source in sources.items()}


def test_events_without_times_and_windows_without_times_are_refused_by_name(line_catalog, tmp_path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    parts = _parts(line_catalog)
    catalog = Catalog(tmp_path / "catalog")  # the same images, ingested from their folders: no times
    catalog.ingest("untimed", create_reader("images")(sample_path("neu") / "IMAGES", label_level=0), progress=False)
    from transferline.data import get_data_spec
    from transferline.data.images import load_images

    untimed = load_images(catalog, "untimed", get_data_spec("image", size=[32, 32]))
    with pytest.raises(DataError, match="'photo'.*120 of its 120 samples have no time, the first 'crazing_1.jpg'"):
        join_by_time({**parts, "photo": untimed}, anchor="photo", tolerance_s=1)
    drives = parts["drives"]
    from dataclasses import replace

    with pytest.raises(DataError, match="input 'drives': these windows carry no times"):
        join_by_time({**parts, "drives": replace(drives, times=None)}, anchor="photo", tolerance_s=1)
    with pytest.raises(ValueError, match="anchor 'drives' holds series windows"):
        join_by_time(parts, anchor="drives", tolerance_s=1)


def test_a_manifest_time_that_is_not_one_names_its_row(tmp_path):
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    image = sample_path("neu") / "IMAGES" / "crazing_1.jpg"
    (tmp_path / "m.csv").write_text(f"path,label,ts\n{image},crazing,2026-03-02T06:00:00Z\n{image},crazing,noon\n")
    with pytest.raises(DataError, match="not a timestamp: 'noon'") as err:
        create_reader("images")(tmp_path, manifest=str(tmp_path / "m.csv"))
    assert err.value.row == 3 and err.value.field == "ts"


@pytest.mark.parametrize("override, message", [
    ("data.join.anchor=drives", "input 'drives' is read as series windows; the anchor is an input of events"),
    ("data.join.anchor=camera", "data.join.anchor: the input whose events .* one of \\['photo', 'drives', 'note'\\]"),
    ("data.join.tolerance_s=-1", "data.join.tolerance_s: seconds .* >= 0, not -1"),
    ("data.join.by=nearest", "data.join.by: 'key' or 'time', not 'nearest'"),
    ("data.time_split=0.8", "data.time_split: splits recordings in time; image datasets take data.test.holdout"),
    ("data.inputs.note={dataset: line_notes, spec: text, spec_options: {max_length: 4000}}",
     "data.inputs.note.spec_options.max_length: tokens per text"),
    ("data.inputs.drives={dataset: line_signals, spec: {kind: waveforms, length: 16, label: label}}",
     "data.inputs.drives: waveforms segments carry no times"),
])
def test_time_join_config_errors_name_the_key(line_catalog, override, message):
    with pytest.raises(TransferlineError, match=message):
        _config(line_catalog, override)


def test_inputs_of_other_kinds_joined_by_key_are_refused(line_catalog):
    with pytest.raises(TransferlineError, match="data.inputs.drives.spec: inputs joined by key are cut by data.spec"):
        _config(line_catalog, "data.join={by: key}")


def test_runs_without_times_name_the_input(line_catalog):
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path
    from transferline.train import prepare_data

    line_catalog.ingest("cnc", create_reader("cnc-mill")(sample_path("cnc_mill")), progress=False)  # steps, no times
    config = _config(line_catalog, "data.inputs.drives={dataset: cnc, spec: {kind: runs, length: 16, "
                                   "features: [X1_ActualPosition]}}")
    with pytest.raises(TransferlineError, match="data.inputs.drives \\(dataset 'cnc'\\): .*no row times"):
        prepare_data(config, line_catalog)


@pytest.fixture(scope="module")
def line_run(line_catalog, tmp_path_factory):
    from transferline.train import train_loop

    run_dir = tmp_path_factory.mktemp("line-run") / "run"
    config = _config(line_catalog, f"run_dir={run_dir}")
    return run_dir, config, train_loop(config)


def test_a_fused_run_serves_any_subset_of_image_window_and_note_as_in_training(line_run, line_catalog, tmp_path):
    """Raw images, raw sensor windows and raw notes, served for every subset of the inputs, against
    the trained model on training's data path (the same inputs marked present, zeros elsewhere)."""
    from base64 import b64encode

    from safetensors.torch import load_file

    from transferline.data import InputSpec
    from transferline.model_registry import ModelRegistry, build_inference_model
    from transferline.serve.predictor import Predictor, RequestError
    from transferline.train import prepare_data

    run_dir, config, metrics = line_run
    assert all(0.0 <= metrics[f"test_without_{name}_accuracy"] <= 1.0 for name in INPUTS)
    meta = json.loads((run_dir / "model.json").read_text())
    assert {n: s.get("modality", n) for n, s in meta["input"].items()} == {"photo": "image", "drives": "series",
                                                                           "note": "text"}
    registry = ModelRegistry(tmp_path / "models")
    registry.register(run_dir, "line-fused")
    test = prepare_data(config, line_catalog).test
    index = np.flatnonzero(test.present.all(axis=1))[:3]
    assert len(index) == 3
    inputs = test.get(index)
    raw_parts = _parts(line_catalog)  # the same windows, not normalized: what a client sends
    photo, note = test.parts["photo"], test.parts["note"]
    raw = {"photo": {"images": [b64encode(photo.images[int(r)].as_py()).decode() for r in test.rows[index, 0]]},
           "drives": {"windows": raw_parts["drives"].get(test.rows[index, 1]).transpose(0, 2, 1).tolist()},
           "note": {"texts": [note.texts[int(r)] for r in test.rows[index, 2]]}}
    eager = build_inference_model(meta, load_file(str(run_dir / "model.safetensors")), InputSpec.from_dict(meta["input"]))
    predictor = Predictor(registry)
    for subset in [INPUTS, ("photo",), ("drives",), ("note",), ("photo", "note")]:
        served = predictor.predict("line-fused", inputs={n: raw[n] for n in subset})
        assert served["inputs_used"] == list(subset)
        np.testing.assert_allclose(served["probabilities"], answer_with(eager, inputs, INPUTS, subset), atol=1e-4)
    with pytest.raises(RequestError, match="give at least one as inputs.<name>") as err:
        predictor.predict("line-fused", inputs={})
    assert err.value.loc == ["body", "inputs"]
