"""Configs: every shipped file loads and validates; overrides; errors name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferline.errors import TransferlineError
from transferline.train import load_config

from ..conftest import REPO

SHIPPED = sorted([*(REPO / "examples" / "configs").glob("*.yaml"), *(REPO / "benchmarks" / "configs").glob("*.yaml")])


def test_configs_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"demo_pretrain.yaml", "demo_transfer.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_validates(path: Path):
    config = load_config(path)
    assert config["data"]["dataset"] and config["data"]["spec"]


def test_overrides_and_aliases():
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         ["adaptation=dann", "encoder=lstm", "target.labelled_units=2", "optim.lr=0.01",
                          "encoder.options.hidden=32"])
    assert config["adaptation"]["name"] == "dann" and config["encoder"]["name"] == "lstm"
    assert config["data"]["target"]["labelled_units"] == 2 and config["optim"]["lr"] == 0.01
    assert config["encoder"]["options"] == {"hidden": 32}
    assert config["data"]["source"]["domains"] == ["FD002"]  # untouched keys keep the file's value


@pytest.mark.parametrize("override,match", [
    ("optim.lrr=1", "unknown config key 'optim.lrr'"),
    ("adaptation=magic", "adaptation.name: unknown 'magic'"),
    ("nonsense", "key=value"),
    ("optim.epochs=-1", "optim.epochs"),
    ("early_stopping.metric=test", "early_stopping.metric"),
    ("optim.ema=1.0", r"optim.ema: a decay in \[0, 1\)"),
])
def test_bad_overrides(override, match):
    with pytest.raises(TransferlineError, match=match):
        load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", [override])


def test_bad_file_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: x, spec: cmapss}\noptim: {epocs: 3}\n")
    with pytest.raises(TransferlineError, match=r"c.yaml: unknown config key 'optim.epocs'"):
        load_config(path)
