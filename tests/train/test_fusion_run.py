"""A run on three real accelerometers joined per sample, on the one training loop: fused features,
adaptation across loads, the named inputs stored with the model, and config errors by key (two
Ray Train workers: ``test_ray_train.py``)."""

from __future__ import annotations

import json

import pytest

from transferline.errors import TransferlineError

from ..conftest import REPO

CONFIG = REPO / "examples" / "configs" / "fusion_cwru.yaml"
# the vendored recordings hold 6,144 samples: windows of 512 every 128, 60% of each recording for training
SMALL = ["data.spec_options.length=512", "data.spec_options.stride=128", "data.time_split=0.6", "data.val_fraction=0.4", "progress=false",
         "optim.batch_size=16", "tracking.mlflow=false"]


@pytest.fixture(scope="module")
def sensor_catalog(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import cwru_folder

    root = tmp_path_factory.mktemp("fusion")
    catalog = Catalog(root / "catalog")
    folder = cwru_folder(root / "cwru")
    for sensor in ("DE", "FE", "BA"):
        catalog.ingest(f"cwru_{sensor.lower()}", create_reader("cwru")(folder, sensor=sensor), progress=False)
    return catalog


def _config(catalog, *extra):
    from transferline.train import load_config

    return load_config(CONFIG, [f"catalog={catalog.root}", *SMALL, *extra])


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

    metrics = train_loop(_config(sensor_catalog, "epochs=3"))
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["feature_mmd"] > 0
    assert metrics["target_labelled_samples"] == 0 and metrics["train_samples"] > 0
    # each sensor down in turn at test time
    assert all(0.0 <= metrics[f"test_without_{s}_accuracy"] <= 1.0 for s in ("de", "fe", "ba"))


@pytest.mark.parametrize("override, message", [
    ("data.inputs={de: cwru_de, present: cwru_fe}", "input names are identifiers other than 'present'"),
    ("data.inputs={de: cwru_de, fe: 3}", "config data.inputs.fe: a catalog dataset name"),
    ("data.inputs={de: cwru_de}", "the fusion encoder needs at least two inputs"),
    ("source.dataset=cwru_de", "config data.source.dataset: with data.inputs every role reads"),
    ("data.streaming.enabled=true", "runs with several inputs are read into memory"),
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
