"""Config files of `tag fit` and `retrieve fit`: the shipped ones validate and hold what the
committed benchmark results ran; flags win over the file; errors name the file and the key."""

from __future__ import annotations

import json
from argparse import Namespace
from dataclasses import asdict

import pytest

from transferline._fitconfig import fit_settings, read_fit_config
from transferline.errors import TransferlineError
from transferline.retrieval import PairConfig
from transferline.tagging import TagConfig

from .conftest import REPO

CONFIGS = REPO / "benchmarks" / "configs"
RESULTS = REPO / "benchmarks" / "results"


@pytest.mark.parametrize("name, section, cls, extra, recorded", [
    ("text_entities", "tagging", TagConfig, (), "tag_config"),
    ("text_retrieval", "retrieval", PairConfig, ("k",), "pair_config")])
def test_shipped_configs_validate_and_are_what_the_results_ran(name, section, cls, extra, recorded):
    data, fields = read_fit_config(CONFIGS / f"{name}.yaml", section, cls, extra)
    fields = {k: v for k, v in fields.items() if k not in extra}
    results = json.loads((RESULTS / f"{name}.json").read_text())
    assert asdict(cls(**fields)) == results["config"][recorded]
    # the split the results state: "<holdout> % test (numpy seed <split_seed>), <val> % of the rest validation"
    split = results["config"]["split"]
    assert f"{data['holdout']:.0%} test (numpy seed {data['split_seed']})".replace("%", " %") in split
    assert f"{data['val_fraction']:.0%} of the rest validation".replace("%", " %") in split


def _args(config=None, **flags):
    keys = ("dataset", "holdout", "val_fraction", "split_seed", "encoder", "pretrained", "depth", "max_length",
            "epochs", "batch_size", "lr", "head_lr", "freeze_epochs", "patience", "seed", "k", "temperature")
    return Namespace(config=config, **{k: flags.get(k) for k in keys})


def test_flags_win_over_the_file_and_the_file_over_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: mie, holdout: 0.3}\ntagging: {epochs: 7, dropout: 0.2, depth: 2}\n")
    data, config, _ = fit_settings(_args(path, epochs=3, val_fraction=0.2), "tagging", TagConfig,
                                   {"holdout": 0.1, "val_fraction": 0.1, "split_seed": 0})
    assert data == {"dataset": "mie", "holdout": 0.3, "val_fraction": 0.2, "split_seed": 0}
    assert (config.epochs, config.dropout, config.depth, config.batch_size) == (3, 0.2, 2, TagConfig().batch_size)
    data, config, extra = fit_settings(_args(dataset="mn"), "retrieval", PairConfig, {"holdout": 0.2}, {"k": 5})
    assert data == {"dataset": "mn", "holdout": 0.2} and config == PairConfig() and extra == {"k": 5}
    path.write_text("data: {dataset: mn}\nretrieval: {k: 9, temperature: 0.1}\n")
    _, config, extra = fit_settings(_args(path, k=3), "retrieval", PairConfig, {}, {"k": 5})
    assert extra == {"k": 3} and config.temperature == 0.1


@pytest.mark.parametrize("text, message", [
    ("data: {dataset: mie}\ntraining: {epochs: 3}\n", "unknown section 'training' (known: data, tagging)"),
    ("data: {dataset: mie, hold_out: 0.2}\n", "data.hold_out: unknown key"),
    ("data: {dataset: mie}\ntagging: {epoch: 3}\n", "tagging.epoch: unknown key"),
    ("data: {dataset: mie}\ntagging: {epochs: three}\n", "tagging.epochs: expected int, found 'three'"),
    ("data: {dataset: mie, holdout: '0.2'}\n", "data.holdout: expected float, found '0.2'"),
    ("data: {dataset: mie}\ntagging: {depth: true}\n", "tagging.depth: expected int, found True"),
    ("data: {dataset: mie}\ntagging: {depth: -1}\n", "tagging: depth"),
    ("data: [mie]\n", "data must be a mapping, found list"),
    ("- data\n", "expected a mapping with sections data and tagging, found list"),
    ("data: {dataset: mie\n", "not valid YAML"),
    ("tagging: {epochs: 3}\n", "--dataset is required (or data.dataset in --config)"),
])
def test_bad_files_are_named_by_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TransferlineError) as info:
        fit_settings(_args(path), "tagging", TagConfig, {})
    assert message in str(info.value)
    assert "--dataset is required" in message or str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(TransferlineError, match=r"--config .*nope.yaml: cannot read it"):
        fit_settings(_args(tmp_path / "nope.yaml"), "retrieval", PairConfig, {})
