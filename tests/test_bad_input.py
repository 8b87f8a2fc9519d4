"""Bad input on the command line: each case exits 2 with one line naming what was wrong (and the fix),
deletes nothing it did not create, and echoes no huge value."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO

PRETRAIN = REPO / "examples" / "configs" / "demo_pretrain.yaml"
TRANSFER = REPO / "examples" / "configs" / "demo_transfer.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory, sample_cmapss):
    """A catalog with the vendored C-MAPSS sample, and an empty model registry."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader

    root = tmp_path_factory.mktemp("home")
    Catalog(root / "catalog").ingest("cmapss-sample", create_reader("cmapss")(sample_cmapss))
    return root


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture()
def pretrained_garbage(tmp_path):
    folder = tmp_path / "pre-garbage"
    folder.mkdir()
    (folder / "encoder.safetensors").write_bytes(b"\x00garbage" * 10)
    (folder / "encoder.json").write_text(json.dumps({"encoder": "cnn_small"}))
    return folder


CASES = {
    "epochs 1.5": (["pretrain", "--config", PRETRAIN, "epochs=1.5"], ["optim.epochs", "integer", "1.5"]),
    "seed abc": (["pretrain", "--config", PRETRAIN, "seed=abc"], ["seed", "'abc'"]),
    "device banana": (["pretrain", "--config", PRETRAIN, "device=banana"], ["device", "'banana'"]),
    "patience -1": (["transfer", "--config", TRANSFER, "early_stopping.patience=-1"], ["early_stopping.patience"]),
    "steps -5": (["transfer", "--config", TRANSFER, "optim.max_steps_per_epoch=-5"], ["optim.max_steps_per_epoch"]),
    "val fraction 1.5": (["transfer", "--config", TRANSFER, "data.val_fraction=1.5"], ["data.val_fraction", "< 1"]),
    "pretrained missing": (["transfer", "--config", TRANSFER, "pretrained=runs/none"], ["pretrained", "runs/none"]),
    "layout sideways": (["ingest", "csv", REPO / "README.md", "--name", "t", "--layout", "sideways"],
                        ["--layout", "'sideways'"]),
    "name 300 chars": (["ingest", "cmapss", REPO / "platform" / "sample_data" / "cmapss", "--name", "n" * 300],
                       ["dataset name", "chars)", "must be letters"]),
    "version superscript": (["models", "show", "rul@\u00b2"], ["neither a version number nor a stage"]),
    "model traversal": (["models", "delete", "../escape@1"], ["model name '../escape'"]),
    "dataset traversal": (["datasets", "delete", "../other-catalog/ds"], ["dataset name '../other-catalog/ds'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_matrix(case, cli, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, fragments = CASES[case]
    code, _, err = cli(*args, "--catalog" if args[0] in ("ingest", "datasets", "pretrain", "transfer") else "--models",
                       home / ("catalog" if args[0] != "models" else "models"))
    _one_line_error(code, err, *fragments)


def test_damaged_pretrained_encoder(cli, home, pretrained_garbage, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("transfer", "--config", TRANSFER, f"pretrained={pretrained_garbage}", "epochs=1", "progress=false",
                       "--catalog", home / "catalog", "--run-dir", tmp_path / "run")
    _one_line_error(code, err, "cannot read", "encoder.safetensors")


def test_damaged_manifest_is_named_and_does_not_break_the_listing(cli, home, sample_cmapss, tmp_path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader

    catalog = Catalog(tmp_path / "cat")
    for name in ("good", "broken"):
        catalog.ingest(name, create_reader("cmapss")(sample_cmapss))
    (catalog.root / "broken" / "manifest.json").write_text('{"name": "broken", "files": [')
    code, out, err = cli("datasets", "list", "--catalog", catalog.root)
    assert code == 0, err
    assert out.startswith("broken") and "DAMAGED" in out and "damaged manifest" in out and "\ngood " in out
    code, _, err = cli("datasets", "show", "broken", "--catalog", catalog.root)
    _one_line_error(code, err, "damaged manifest", "broken/manifest.json", "ingest it again")
    code, _, err = cli("datasets", "delete", "broken", "--catalog", catalog.root)  # the way out works
    assert code == 0 and not (catalog.root / "broken").exists()


def _csv(path, rows: int, bad_row: int, bad: str) -> None:
    lines = ["time,machine,temp,vib,comment"]
    for i in range(rows):
        lines.append(f"{i},m1,{bad if i == bad_row else 20 + i * 0.1:},{i * 0.01},ok")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad_row,bad", [(5, "hot"), (42, "NaN"), (0, ""), (150, "n/a")])
def test_auto_detected_column_with_a_bad_value_names_file_row_and_field(cli, tmp_path, bad_row, bad):
    src = tmp_path / "t.csv"
    _csv(src, 300, bad_row, bad)
    code, _, err = cli("ingest", "csv", src, "--name", "t", "--asset-col", "machine", "--quiet", "--catalog",
                       tmp_path / "cat")
    _one_line_error(code, err, f"file '{src}'", f"row {bad_row + 2}", "field 'temp'")
    assert not (tmp_path / "cat" / "t").exists()


def test_text_columns_are_still_left_out(cli, tmp_path):
    src = tmp_path / "t.csv"
    _csv(src, 50, -1, "")
    code, out, err = cli("ingest", "csv", src, "--name", "t", "--asset-col", "machine", "--quiet", "--catalog",
                         tmp_path / "cat")
    assert code == 0, err
    from transferline.catalog import Catalog

    assert "comment" not in Catalog(tmp_path / "cat").read("t").column_names


def test_a_huge_field_is_not_echoed_whole(cli, tmp_path):
    src = tmp_path / "t.csv"
    _csv(src, 20, 3, "x" * 20_000_000)
    code, _, err = cli("ingest", "csv", src, "--name", "t", "--asset-col", "machine", "--quiet", "--catalog",
                       tmp_path / "cat")
    _one_line_error(code, err, "row 5", "field 'temp'", "20,000,002 chars")
    assert len(err) < 1000


# -- nothing deleted that we did not create --------------------------------------------------------
def _train(cli, home, *args):
    return cli(*args, "epochs=1", "optim.max_steps_per_epoch=2", "progress=false", "--quiet", "--catalog",
               home / "catalog")


def test_run_dir_that_is_not_ours_is_refused_and_survives(cli, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mydir"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    code, _, err = _train(cli, home, "pretrain", "--config", PRETRAIN, "--run-dir", "mydir")
    _one_line_error(code, err, str(mine), "not a transferline run folder", "nothing was deleted")
    assert (mine / "thesis.tex").read_text() == "x"
    (tmp_path / "notes.txt").write_text("keep")
    for folder in (".", "..", str(tmp_path.parent)):
        code, _, err = _train(cli, home, "pretrain", "--config", PRETRAIN, "--run-dir", folder)
        _one_line_error(code, err, "is the current folder or holds it")
    assert (tmp_path / "notes.txt").read_text() == "keep"


def test_run_dir_holding_an_input_is_refused_and_our_own_run_is_replaced(cli, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _train(cli, home, "pretrain", "--config", PRETRAIN, "--run-dir", "runs/pre")
    assert code == 0, err
    encoder = tmp_path / "runs" / "pre" / "encoder.safetensors"
    weights = encoder.read_bytes()
    code, _, err = _train(cli, home, "transfer", "--config", TRANSFER, "pretrained=runs/pre", "--run-dir", "runs/pre")
    _one_line_error(code, err, "an input of this run")
    code, _, err = _train(cli, home, "transfer", "--config", TRANSFER, "pretrained=runs/pre/.", "--run-dir", "runs")
    _one_line_error(code, err, "an input of this run")
    assert encoder.read_bytes() == weights
    (tmp_path / "runs" / "pre" / "stale.txt").write_text("old")
    code, _, err = _train(cli, home, "pretrain", "--config", PRETRAIN, "seed=1", "--run-dir", "runs/pre")
    assert code == 0, err  # a run folder of ours is replaced whole
    assert not (tmp_path / "runs" / "pre" / "stale.txt").exists() and encoder.is_file()
    assert (tmp_path / "runs" / "pre" / ".transferline-run").is_file()


def test_a_file_as_run_dir_is_refused(cli, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("data")
    code, _, err = _train(cli, home, "pretrain", "--config", PRETRAIN, "--run-dir", "f")
    _one_line_error(code, err, "is a file")
    assert (tmp_path / "f").read_text() == "data"
