"""Configs: every shipped file loads and validates; overrides; errors name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferline.errors import TransferlineError
from transferline.train import load_config

from ..conftest import REPO

FIT_CONFIGS = {"text_entities.yaml", "text_retrieval.yaml"}  # `tag fit` / `retrieve fit` files: tests/test_fit_config.py
SHIPPED = sorted(p for p in [*(REPO / "examples" / "configs").glob("*.yaml"),
                             *(REPO / "benchmarks" / "configs").glob("*.yaml")] if p.name not in FIT_CONFIGS)


def test_configs_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"demo_pretrain.yaml", "demo_transfer.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_validates(path: Path):
    config = load_config(path)
    assert (config["data"]["dataset"] or config["data"]["inputs"]) and config["data"]["spec"]


def test_overrides_and_aliases():
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         ["adaptation=dann", "encoder=lstm", "target.labelled_units=2", "optim.lr=0.01",
                          "encoder.options.hidden=32"])
    assert config["adaptation"]["name"] == "dann" and config["encoder"]["name"] == "lstm"
    assert config["data"]["target"]["labelled_units"] == 2 and config["optim"]["lr"] == 0.01
    assert config["encoder"]["options"] == {"hidden": 32}
    assert config["data"]["source"]["domains"] == ["FD002"]  # untouched keys keep the file's value


@pytest.mark.parametrize("name", ["inception_small", "tsai/inception_small"])
def test_encoder_names_with_and_without_family(name):
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", [f"encoder={name}"])
    assert config["encoder"]["name"] == name


def test_a_family_member_by_folder_or_model_name_validates(tmp_path):
    """hf/<folder> and timm/<any model> are names of their family, not of the listed encoders."""
    for name in (f"hf/{tmp_path}", "timm/resnet18"):
        config = load_config(REPO / "examples" / "configs" / "text_classification.yaml", [f"encoder={name}"])
        assert config["encoder"]["name"] == name
    with pytest.raises(TransferlineError, match="encoder.name: unknown 'resnet18'"):
        load_config(REPO / "examples" / "configs" / "text_classification.yaml", ["encoder=resnet18"])


@pytest.mark.parametrize("override,match", [
    ("optim.lrr=1", "unknown config key 'optim.lrr'"),
    ("adaptation=magic", "adaptation.name: unknown 'magic'"),
    ("nonsense", "key=value"),
    ("optim.epochs=-1", "optim.epochs"),
    ("early_stopping.metric=test", "early_stopping.metric"),
    ("optim.ema=1.0", r"optim.ema: a decay in \[0, 1\)"),
    ("early_stopping.patience=-1", r"early_stopping.patience: must be an integer >= 0, got -1"),
    ("optim.max_steps_per_epoch=-5", r"optim.max_steps_per_epoch: must be an integer >= 1 or null, got -5"),
    ("optim.max_steps_per_epoch=0", r"optim.max_steps_per_epoch: must be an integer >= 1"),
    ("data.val_fraction=1.5", r"data.val_fraction: must be a number > 0 and < 1, got 1.5"),
    ("data.val_fraction=0", r"data.val_fraction: must be a number > 0"),
    ("epochs=1.5", r"optim.epochs: must be an integer >= 1, got 1.5"),
    ("seed=abc", r"seed: must be an integer >= 0, got 'abc'"),
    ("seed=true", r"seed: must be an integer"),
    ("device=banana", r"device: 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', not 'banana'"),
    ("optim.lr=.nan", r"optim.lr: must be a number > 0"),
    ("optim.batch_size=0", r"optim.batch_size: must be an integer >= 1"),
    ("target.labelled_units=-2", r"data.target.labelled_units: must be an integer >= 0"),
    ("data.time_split=1", r"data.time_split: must be a number > 0 and < 1 or null"),
    ("progress=maybe", r"progress: true or false"),
    ("data.spec_options.normalize=zscore", r"data.spec_options.normalize: runs windows take group, window, none"),
    ("data.spec_options.lenght=5", r"data.spec_options: .*lenght"),
    ("data.spec_options.length=0", r"data.spec_options.length: a positive integer"),
    ("pretrained=/no/such/run", r"config pretrained: /no/such/run holds no encoder.safetensors"),
])
def test_bad_overrides(override, match):
    with pytest.raises(TransferlineError, match=match):
        load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", [override])


def test_bad_file_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: x, spec: cmapss}\noptim: {epocs: 3}\n")
    with pytest.raises(TransferlineError, match=r"c.yaml: unknown config key 'optim.epocs'"):
        load_config(path)


def test_spec_written_in_full_and_null_clears_an_inherited_option(tmp_path):
    from transferline.data import get_data_spec

    path = tmp_path / "c.yaml"
    path.write_text("data:\n  dataset: lab\n  spec: {kind: waveforms, length: 2048, stride: 256, label: fault, "
                    "domain: speed}\ntask: {name: fault_diagnosis}\n")
    config = load_config(path)
    spec = get_data_spec(config["data"]["spec"], **config["data"]["spec_options"])
    assert (spec.kind, spec.length, spec.stride, spec.label, spec.domain, spec.normalize) == \
        ("waveforms", 2048, 256, "fault", "speed", "window")
    assert get_data_spec({"kind": "waveforms", "length": 512}).stride == 512  # stride defaults to the length
    cleared = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", ["data.spec_options.label_cap=null"])
    assert get_data_spec("cmapss", **cleared["data"]["spec_options"]).label_cap is None
    assert get_data_spec("cmapss").label_cap == 125
    assert get_data_spec("cwru", classes=None).classes == ()  # then the dataset's own class list is used
    assert get_data_spec("cwru", normalize=None).normalize == "window"  # the kind's default, not runs' group


@pytest.mark.parametrize("spec, match", [
    ("{kind: waveforms}", r"config data.spec: a waveforms spec needs length"),
    ("{kind: tables, length: 3}", r"config data.spec: a data spec written in full needs kind: runs, waveforms, images or text"),
    ("{kind: waveforms, length: 64, lenght: 5}", r"config data.spec: window spec 'custom' has no option\(s\) \['lenght'\]"),
    ("{kind: waveforms, length: 64, stride: 0}", r"config data.spec.stride: a positive integer, not 0"),
    ("{kind: runs, length: 30}", r"config data.spec.features: a runs spec needs features"),
    ("{kind: images, size: [4, 4]}", r"config data.spec.size: \[height, width\], integers 8 to 4096"),
    ("vibration", r"config data.spec: unknown 'vibration'; known: .*`transferline datasets show NAME` suggests one"),
])
def test_bad_written_specs(tmp_path, spec, match):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  dataset: lab\n  spec: {spec}\n")
    with pytest.raises(TransferlineError, match=match):
        load_config(path)
