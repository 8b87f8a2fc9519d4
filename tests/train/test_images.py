"""Image runs on the one training loop: few-shot classification from ImageNet weights, supervised
pretraining on images then transfer, registration with an export, and config errors that name the
key (two Ray workers: ``test_ray_train.py``)."""

from __future__ import annotations

import json

import pytest
import torch

from transferline.errors import TransferlineError

from ..conftest import REPO

CONFIG = REPO / "examples" / "configs" / "neu_fewshot.yaml"
SMALL = ["data.spec_options.size=[64,64]", "progress=false"]


def _config(neu_catalog, *extra):
    from transferline.train import load_config

    return load_config(CONFIG, [f"catalog={neu_catalog.root}", *SMALL, *extra])


@pytest.mark.slow
def test_fewshot_from_imagenet_beats_chance_and_registers(neu_catalog, tmp_path):
    from transferline.model_registry import ModelRegistry
    from transferline.train import train_loop

    config = _config(neu_catalog, "epochs=6")
    config["run_dir"] = str(tmp_path / "run")
    metrics = train_loop(config)
    # 5 images per class trained on, the other half of each class tested: 60 images, 6 classes
    assert metrics["test_accuracy"] >= 0.6, metrics
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["input"] == {"image": {"size": [64, 64], "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3,
                                       "resize": "stretch", "standardize": False}}
    assert meta["output"]["classes"][0] == "crazing" and meta["task"]["n_classes"] == 6
    entry = ModelRegistry(tmp_path / "models").register(tmp_path / "run", "neu-5shot")
    assert entry.modality == "image" and entry.task["type"] == "classification"
    assert (ModelRegistry(tmp_path / "models").path("neu-5shot", 1) / "model.ts").is_file()


@pytest.mark.slow
def test_supervised_pretraining_on_images_then_fewshot_from_it(neu_catalog, tmp_path):
    from transferline.train import load_config, train_loop

    pre = load_config(CONFIG, [f"catalog={neu_catalog.root}", *SMALL, "mode=pretrain", "objective=supervised",
                               "source.domains=[neu]", "source.split=all", "target.domains=null", "epochs=2",
                               "encoder.options.pretrained=null"])
    pre["run_dir"] = str(tmp_path / "pre")
    assert train_loop(pre)["val_loss"] > 0
    config = _config(neu_catalog, "epochs=2", f"pretrained={tmp_path / 'pre'}", "encoder.options.pretrained=null",
                     "strategy=linear_probe")
    config["run_dir"] = str(tmp_path / "probe")
    assert 0 <= train_loop(config)["test_accuracy"] <= 1
    # the frozen encoder the transfer run saved is exactly the one pretraining left
    from safetensors.torch import load_file

    from transferline.train.checkpoint import load_state

    pretrained = load_state(tmp_path / "pre", "encoder")[0]
    saved = load_file(str(tmp_path / "probe" / "model.safetensors"))
    assert pretrained and all(torch.equal(saved[f"encoder.{k}"], v) for k, v in pretrained.items())


@pytest.mark.parametrize("override,match", [
    ("data.spec_options.size=[64]", r"data.spec_options.size: \[height, width\]"),
    ("data.spec_options.channels=2", "channels 1 or 3"),
    ("data.spec_options.colour=true", "has no option"),
    ("data.spec_options.standardize=sometimes", "standardize: true or false, not 'sometimes'"),
    ("data.streaming.enabled=true", "streaming.enabled: streams the source domains; set data.source.domains"),
    ("target.labelled_units=3", "labelled_units or per_class, not both"),
])
def test_image_config_errors_name_the_key(override, match, neu_catalog):
    overrides = [override]
    with pytest.raises(TransferlineError, match=match):
        _config(neu_catalog, *overrides)


def test_series_and_image_options_are_not_mixed(neu_catalog, sample_cmapss, tmp_path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.train import load_config, prepare_data

    catalog = Catalog(tmp_path / "cat")
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_cmapss))
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         [f"catalog={catalog.root}", "target.labelled_units=0", "target.per_class=2"])
    with pytest.raises(ValueError, match="target.per_class draws samples of each class from image or text datasets"):
        prepare_data(config)
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         [f"catalog={catalog.root}", "test.holdout=0.5"])
    with pytest.raises(ValueError, match="data.test.holdout holds out images or texts per class"):
        prepare_data(config)
    config = _config(neu_catalog, "data.dataset=neu", "data.spec=cmapss", "data.spec_options={}")
    with pytest.raises(ValueError, match="'neu' holds images: it needs an image input spec"):
        prepare_data(config)
