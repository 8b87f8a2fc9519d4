"""From the command line: ingest the CNC sample with its run table, fit and score a surrogate,
register it, and ask it for set-points; the registered export answers like the fitted ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferline.sample_data import sample_path


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    from transferline.cli import main

    root = tmp_path_factory.mktemp("proc")
    catalog, models = root / "catalog", root / "models"
    assert main(["ingest", "cnc-mill", str(sample_path("cnc_mill")), "--name", "cnc", "--catalog", str(catalog),
                 "--quiet"]) == 0
    assert main(["process", "fit", "--dataset", "cnc", "--catalog", str(catalog), "--out", str(root / "run"),
                 "--members", "8", "--epochs", "150"]) == 0
    assert main(["models", "register", str(root / "run"), "--name", "cnc-quality", "--models", str(models)]) == 0
    return root, catalog, models


def test_fit_writes_a_scored_run_and_the_registry_describes_it(registered):
    from transferline.model_registry import ModelRegistry, load_exported
    from transferline.process.store import load_surrogate

    root, _, models = registered
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert set(metrics["loeo"]) == {"tool_condition", "machining_finalized", "passed_visual_inspection"}
    assert set(metrics["baselines"]) == {"prevalence", "logistic"}
    entry = ModelRegistry(models).get("cnc-quality")
    assert entry.task["name"] == "process_outcome" and entry.modality == "tabular"
    assert entry.input == {"tabular": {"columns": ["feedrate", "clamp_pressure"],
                                       "ranges": {"feedrate": [3.0, 20.0], "clamp_pressure": [2.5, 4.0]}}}
    assert [o["name"] for o in entry.output["outcomes"]][2] == "passed_visual_inspection"
    import torch

    eager, _ = load_surrogate(root / "run")
    x = torch.tensor([[3.0, 2.5], [12.0, 3.3], [20.0, 4.0], [25.0, 4.0], [7.0, 3.0]])  # not the traced batch size
    exported = load_exported(ModelRegistry(models).artifact("cnc-quality"))
    np.testing.assert_allclose(exported(x).detach().numpy(), eager(x).detach().numpy(), atol=1e-6)


def test_optimize_prints_recommendations_and_json(registered, cli):
    _, _, models = registered
    code, out, err = cli("optimize", "--model", "cnc-quality", "--models", models, "--objective", "max:feedrate",
                         "--constraint", "passed_visual_inspection>=0.9", "--bounds", "feedrate=3:25", "--top", "2")
    assert code == 0, err
    assert out.startswith("warning: feedrate: bounds 3:25 reach outside the fitted data (3:20)")
    assert "1. feedrate=" in out and "P(passed_visual_inspection=yes)" in out
    code, out, _ = cli("optimize", "--model", "cnc-quality", "--models", models, "--objective", "min:clamp_pressure",
                       "--constraint", "machining_finalized>=0.8", "--json", "--next", "1")
    answer = json.loads(out)
    assert code == 0 and answer["model"] == "cnc-quality@1" and len(answer["next"]) == 1
    assert answer["objective"] == ["min", "clamp_pressure"]
    pressures = [r["setpoints"]["clamp_pressure"] for r in answer["recommendations"]]
    assert pressures == sorted(pressures)


def test_optimize_says_plainly_when_nothing_qualifies_and_names_bad_input(registered, cli):
    _, _, models = registered
    code, out, _ = cli("optimize", "--model", "cnc-quality", "--models", models, "--objective", "max:feedrate",
                       "--constraint", "tool_condition>=0.99999", "machining_finalized<=0.00001",
                       "--min-probability", "1")
    assert code == 1 and "no set-point within the bounds meets" in out
    code, _, err = cli("optimize", "--model", "cnc-quality", "--models", models, "--objective", "max:feedrate",
                       "--bounds", "feedrate=fast:20")
    assert code == 2 and "bounds: 'feedrate=fast:20': expected NAME=LOW:HIGH" in err
    code, _, err = cli("optimize", "--model", "nope", "--models", models, "--objective", "max:feedrate")
    assert code == 2 and "no model 'nope'" in err


def test_fit_refuses_an_existing_folder_and_writes_nothing_half(registered, cli):
    root, catalog, _ = registered
    before = sorted(p.name for p in (root / "run").iterdir())
    code, _, err = cli("process", "fit", "--dataset", "cnc", "--catalog", catalog, "--out", root / "run", "--no-eval",
                       "--epochs", "5")
    assert code == 2 and "exists" in err
    assert sorted(p.name for p in (root / "run").iterdir()) == before
    assert not [p for p in root.iterdir() if p.name.startswith(".run.")]


def test_next_experiments_warm_started_from_another_machine(tmp_path, cli):
    """Two 'machines' from the sample (odd and even experiments): machine B's next experiments are
    warm-started from machine A's, and each source's weight is reported."""
    import shutil

    models = tmp_path / "models"
    for machine, keep in (("a", 1), ("b", 0)):
        root = tmp_path / machine
        (root / "data").mkdir(parents=True)
        lines = (sample_path("cnc_mill") / "train.csv").read_text().splitlines()
        rows = [line for line in lines[1:] if int(line.split(",")[0]) % 2 == keep]
        (root / "train.csv").write_text("\n".join([lines[0], *rows]) + "\n")
        for line in rows:
            name = f"experiment_{int(line.split(',')[0]):02d}.csv.gz"
            shutil.copy(sample_path("cnc_mill") / "data" / name, root / "data" / name)
        for args in (("ingest", "cnc-mill", root, "--name", f"cnc-{machine}", "--quiet"),
                     ("process", "fit", "--dataset", f"cnc-{machine}", "--out", tmp_path / f"run-{machine}",
                      "--members", "4", "--epochs", "60", "--no-eval"),
                     ("models", "register", tmp_path / f"run-{machine}", "--name", f"cnc-{machine}", "--models", models)):
            code, _, err = cli(*args, *(("--catalog", tmp_path / "cat") if args[0] != "models" else ()))
            assert code == 0, err
    code, out, err = cli("optimize", "--model", "cnc-b", "--models", models, "--objective", "max:feedrate",
                         "--constraint", "passed_visual_inspection>=0.9", "--next", "1", "--warm-start", "cnc-a", "--json")
    assert code in (0, 1), err
    answer = json.loads(out)
    weight = answer["warm_start"]["passed_visual_inspection"]["cnc-a@1"]
    assert set(weight) == {"kept", "ranking", "correlation"} and 0 <= weight["ranking"] <= 1
    assert "warm-started from cnc-a@1" in answer["acquisition"]
    x = answer["next"][0]
    assert 3 <= x["feedrate"] <= 20 and 2.5 <= x["clamp_pressure"] <= 4
    code, _, err = cli("optimize", "--model", "cnc-b", "--models", models, "--objective", "max:feedrate",
                       "--constraint", "passed_visual_inspection>=0.9", "--warm-start", "cnc-a")
    assert code == 2 and "warm_start: warm starting picks the next experiments" in err
