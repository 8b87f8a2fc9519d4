"""A run on three real accelerometers joined per sample, on the one training loop: fused features,
adaptation across loads, the named inputs stored with the model, and config errors by key (two
Ray Train workers: ``test_ray_train.py``)."""

from __future__ import annotations

import json

import pytest

from transferline.errors import TransferlineError

from ..conftest import REPO, SENSOR_SMALL, sensor_catalog_at

CONFIG = REPO / "examples" / "configs" / "fusion_cwru.yaml"


@pytest.fixture(scope="module")
def sensor_catalog(tmp_path_factory):
    return sensor_catalog_at(tmp_path_factory.mktemp("fusion"))


def _config(catalog, *extra):
    from transferline.train import load_config

    return load_config(CONFIG, [f"catalog={catalog.root}", *SENSOR_SMALL, *extra])


@pytest.mark.slow
@pytest.mark.parametrize("fusion", ["concat", "gated", "attention"])
def test_fused_run_learns_and_stores_its_inputs(sensor_catalog, tmp_path, fusion):
    from transferline.train import train_loop

    config = _config(sensor_catalog, "epochs=8", f"encoder.options.fusion={fusion}", "adaptation=source_only",
                     "target.domains=[\"0\"]")  # within one load: the three faults and normal, 0 hp
    config["run_dir"] = str(tmp_path / "run")
    metrics = train_loop(config)
    assert metrics["test_accuracy"] >= 0.75, metrics  # 4 classes present: chance 0.25
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert list(meta["input"]) == ["de", "fe", "ba"]
    assert meta["input"]["ba"] == {"modality": "series", "channels": 1, "window": 512, "signals": ["BA_time"],
                                   "normalize": "window", "group_by": None, "normalizer": None}
    assert meta["encoder"] == "fusion" and meta["options"]["fusion"] == fusion


@pytest.mark.slow
def test_fused_run_adapts_across_loads(sensor_catalog):
    from transferline.train import train_loop

    records = []
    metrics = train_loop(_config(sensor_catalog, "epochs=3"), report=records.append)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["feature_mmd"] > 0
    # MMD aligned the fused features of source and target in every epoch
    assert all(r["train_align"] > 0 for r in records) and len(records) == 3
    assert metrics["target_labelled_samples"] == 0 and metrics["train_samples"] > 0
    # each sensor down in turn at test time
    assert all(0.0 <= metrics[f"test_without_{s}_accuracy"] <= 1.0 for s in ("de", "fe", "ba"))


@pytest.mark.parametrize("override, message", [
    ("data.inputs={de: cwru_de, present: cwru_fe}", "input names are identifiers other than 'present'"),
    ("data.inputs={de: cwru_de, fe: 3}", "config data.inputs.fe: a catalog dataset name"),
    ("data.inputs={de: cwru_de}", "the fusion encoder fuses several inputs; it needs at least two"),
    ("source.dataset=cwru_de", "config data.source.dataset: with data.inputs every role reads"),
    ("data.streaming.enabled=true", "streaming.enabled: not with data.time_split"),
])
def test_config_errors_name_the_key(sensor_catalog, override, message):
    with pytest.raises(TransferlineError, match=message):
        _config(sensor_catalog, override)


def test_an_input_of_another_kind_is_refused(sensor_catalog, tmp_path):
    from transferline.connectors import create_reader
    from transferline.sample_data import maintenance_log
    from transferline.train import prepare_data

    sensor_catalog.ingest("log", create_reader("text")(maintenance_log(tmp_path / "log.csv"), text_col="note",
                                                       label_col="fault"), progress=False)
    config = _config(sensor_catalog, "data.inputs={de: cwru_de, notes: log}")
    with pytest.raises(ValueError, match="dataset 'log' holds text: it needs a text input spec"):
        prepare_data(config)


def test_an_empty_set_is_named_with_what_chose_it(sensor_catalog):
    """Windows too long for the recordings' parts after the time split leave the validation set
    empty: a clear error before training, not an IndexError from a metric afterwards."""
    from transferline.train import prepare_data

    # 6,144 samples: 60% to train and test on the rest, 40% of the training part (1,474 samples) to validate
    config = _config(sensor_catalog, "data.spec_options.length=2048", "data.spec_options.stride=512")
    with pytest.raises(TransferlineError, match=r"the validation set has no samples; with data.time_split=0.6 and "
                                                r"data.val_fraction=0.4, .* a whole window of 2048 samples"):
        prepare_data(config)
    assert len(prepare_data(_config(sensor_catalog)).source_val) > 0  # the default window fits


@pytest.mark.slow
def test_cross_modal_pretraining_then_fused_transfer(sensor_catalog, tmp_path):
    """Unlabelled alignment of the three sensors (CLIP-style), then the fused classifier starts
    from those weights."""
    from transferline.train import train_loop

    pre = _config(sensor_catalog, "mode=pretrain", "objective=cross_modal", "objective.options.anchor=de", "epochs=2",
                  f"run_dir={tmp_path / 'pre'}")
    metrics = train_loop(pre)
    assert metrics["val_loss"] > 0
    history = [json.loads(line) for line in (tmp_path / "pre" / "history.jsonl").read_text().splitlines()]
    assert all("train_pair_accuracy" in r for r in history)
    meta = json.loads((tmp_path / "pre" / "encoder.json").read_text())
    assert meta["objective"] == "cross_modal" and list(meta["input"]) == ["de", "fe", "ba"]
    tuned = train_loop(_config(sensor_catalog, f"pretrained={tmp_path / 'pre'}", "epochs=2", "adaptation=source_only"))
    assert 0.0 <= tuned["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_waveform_and_its_spectrogram_as_two_inputs(sensor_catalog, tmp_path):
    """One sensor seen twice: raw waveform (WDCNN) and spectrogram image (ImageNet EfficientNet-Lite0),
    fused; the model registers and its export answers like the eager model."""
    from transferline.model_registry import ModelRegistry
    from transferline.train import train_loop

    config = _config(sensor_catalog, "data.inputs={wave: cwru_de, image: cwru_de}", "adaptation=source_only",
                     "encoder.options.encoders={wave: wdcnn, image: {name: spectrogram, options: {size: 32}}}",
                     "epochs=2", f"run_dir={tmp_path / 'run'}")
    metrics = train_loop(config)
    assert 0.0 <= metrics["test_without_image_accuracy"] <= 1.0
    assert metrics["test_without_image_accuracy"] != metrics["test_without_wave_accuracy"] or \
        metrics["test_without_image_macro_f1"] != metrics["test_without_wave_macro_f1"]  # the two views differ
    entry = ModelRegistry(tmp_path / "models").register(tmp_path / "run", "two-views")
    assert entry.runtime["served_by"] == "onnxruntime" and entry.modality == "wave+image", entry.runtime
