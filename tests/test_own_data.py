"""A newcomer's own data through the command line: recordings in a layout no built-in reader knows,
the spec `datasets show` suggests, and one-line errors (exit 2, no traceback) for every mistake
the first users made."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import write_fan_end

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Real fan-end vibration (vendored CWRU slice) written as a newcomer's lab would: one .npy per
    recording named ``<fault>_<load>hp_<part>.npy``, two parts per recording."""
    return write_fan_end(tmp_path_factory.mktemp("lab"))


@pytest.fixture()
def lab(recordings, tmp_path, cli):
    """The recordings ingested by the generic waveform path into a fresh catalog."""
    catalog = tmp_path / "catalog"
    code, out, err = cli("ingest", "waveforms", recordings, "--name", "lab", "--catalog", catalog,
                         "--pattern", "{label}_{load}hp_*.npy", "--sample-rate", "12000", "--quiet")
    assert code == 0, err
    assert "found 12 recording(s), 1 channel(s) (signal), first at 12000 Hz" in out
    assert "classes  B007 4, IR007 4, OR007 4" in out and "load     0 6, 3 6" in out
    return catalog


def _suggested(cli, catalog) -> dict:
    code, out, _ = cli("datasets", "show", "lab", "--catalog", catalog)
    assert code == 0 and "classes  B007, IR007, OR007" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("data: {dataset: lab"))
    return yaml.safe_load(line.strip())["data"]


def test_suggested_spec_trains_and_classes_come_from_the_catalog(lab, cli, tmp_path):
    data = _suggested(cli, lab)
    assert data["spec"] == {"kind": "waveforms", "length": 1024, "stride": 1024, "normalize": "window",
                            "label": "label", "domain": "load"}
    config = tmp_path / "own.yaml"
    config.write_text(yaml.safe_dump({
        "data": {**data, "source": {"domains": [0], "split": "all"}, "target": {"domains": [3], "split": "all"},
                 "test": {"split": "all", "last_only": False}},
        "encoder": {"name": "cnn_small"}, "task": {"name": "fault_diagnosis"}, "objective": {"name": "supervised"},
        "optim": {"epochs": 2, "batch_size": 32}}))
    code, out, err = cli("transfer", "--config", config, "--catalog", lab, "--run-dir", tmp_path / "run", "--quiet")
    assert code == 0, err
    import json

    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["output"] == {"kind": "class", "classes": ["B007", "IR007", "OR007"]}
    assert meta["task"]["n_classes"] == 3 and meta["input"]["series"]["signals"] == ["signal"]
    assert re.search(r"test_accuracy\s+[01]\.\d{4}", out)


def test_dry_run_writes_nothing(recordings, cli, tmp_path):
    code, out, _ = cli("ingest", "waveforms", recordings, "--name", "lab", "--catalog", tmp_path / "cat",
                       "--pattern", "{label}_{load}hp_*.npy", "--sample-rate", "12000", "--dry-run")
    assert code == 0 and "dry run: nothing written (12 part(s) would be ingested as 'lab')" in out
    assert not (tmp_path / "cat" / "lab").exists()


def test_every_flag_of_every_command_is_described():
    import argparse

    from transferline.cli import build_parser
    from transferline.connectors.opcua._cli import COMMANDS, ingest_parser

    bare = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help:
                bare.append((" ".join(path), action.option_strings or action.dest))

    walk(build_parser(), ["transferline"])
    for command in COMMANDS:
        walk(ingest_parser(command), ["transferline", "ingest", command])
    assert not bare, f"flags without help: {bare}"
    ingest = build_parser()._subparsers._group_actions[0].choices["ingest"].format_help()
    assert "MANIFEST.csv" in ingest and "--pattern" in ingest and "waveforms  your own recordings" in ingest


@pytest.fixture()
def others(lab, neu_catalog, cli, tmp_path):
    """Besides ``lab``: NEU images and a maintenance-text log in the same catalog."""
    import shutil

    shutil.copytree(neu_catalog.root / "neu", lab / "neu")
    log = tmp_path / "log.csv"
    log.write_text("text,labels\npump seal leaking,leak\nbearing noisy,noise\n")
    code, _, err = cli("ingest", "text", log, "--name", "log", "--catalog", lab, "--label-col", "labels", "--quiet")
    assert code == 0, err
    return lab


BASE = ["source.domains=[0]", "target.domains=[3]", "source.split=all", "target.split=all", "test.split=all",
        "test.last_only=false", "task=fault_diagnosis", "objective=supervised", "encoder=cnn_small", "epochs=1",
        "--quiet"]
WAVE = "data.spec={kind: waveforms, length: 1024, label: label, domain: load}"


@pytest.mark.parametrize("overrides, message", [
    (["data.dataset=lab", WAVE, "task.options.n_classes=10"],
     r"task.options.n_classes=10 but the data has 3 classes \(B007, IR007, OR007\); leave it unset"),
    (["data.dataset=lab", "data.spec=cwru", "data.spec_options.domain=load", "data.spec_options.label=label"],
     r"the spec's classes \['normal', 'IR007', .*\] differ from dataset 'lab''s \['B007', 'IR007', 'OR007'\]; clear "
     r"the spec's \(data.spec_options.classes=null\)"),
    (["data.dataset=lab", "data.spec=cwru", "data.spec_options.classes=null"],
     r"dataset 'lab' has no column\(s\) \['label_id', 'load_hp'\] that the data spec names; it has .*load"),
    (["data.dataset=neu", "data.spec=cwru"], r"dataset 'neu' holds images: it needs an image input spec, not "
                                             r"window spec 'cwru'"),
    (["data.dataset=log", WAVE], r"dataset 'log' holds text: it needs a text input spec, not window spec 'custom' "
                                 r"\(for waveforms\)"),
    (["data.dataset=lab", "data.spec={kind: waveforms, length: 1024, label: fault, domain: load}"],
     r"has no column\(s\) \['fault'\]"),
])
def test_mistakes_get_one_line_naming_the_field(others, cli, tmp_path, overrides, message):
    code, out, err = cli("transfer", *BASE, *overrides, "--catalog", others, "--run-dir", tmp_path / "run")
    assert code == 2, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "run" / "model.safetensors").exists()
