"""Text runs end to end: a maintenance log ingested by the generic text path, MiniLM fine-tuned on a few
labelled texts per class, registered with its tokenizer, and served: the served answers equal the
run's own predictions; MaintIE's multi-label annotations train through the same path; two plants'
logs adapt (MMD, CORAL, DANN) with L2-SP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ..conftest import REPO

pytestmark = pytest.mark.integration


def test_registered_text_model_answers_like_the_run(text_run, tmp_path):
    from safetensors.torch import load_file

    from transferline.data import InputSpec
    from transferline.model_registry import ModelRegistry, build_inference_model
    from transferline.serve import Predictor
    from transferline.serve.predictor import RequestError
    from transferline.train import prepare_data

    run, config = text_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and 0 <= metrics["test_macro_f1"] <= 1
    meta = json.loads((run / "model.json").read_text())
    assert meta["input"] == {"text": {"tokenizer": "hf/all-minilm-l6-v2", "max_length": 32}}
    assert meta["output"] == {"kind": "class", "classes": ["degraded", "failed", "routine"]}

    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(run, "log-fault")
    assert entry.modality == "text" and entry.task["type"] == "classification"
    test = prepare_data(config).test
    model = build_inference_model(meta, load_file(str(run / "model.safetensors")), InputSpec.from_dict(meta["input"]))
    with torch.no_grad():
        trained = model(torch.from_numpy(test.get(np.arange(len(test))))).numpy()
    reply = Predictor(registry).predict("log-fault", texts=test.texts)
    assert reply["labels"] == [meta["output"]["classes"][i] for i in trained.argmax(-1)]
    np.testing.assert_allclose(reply["probabilities"], trained, atol=1e-5)

    for texts, loc in [([], ["body", "texts"]), (["fine", "  "], ["body", "texts", 1]),
                       (["x" * 20_001], ["body", "texts", 0])]:
        with pytest.raises(RequestError) as err:
            Predictor(registry).predict("log-fault", texts=texts)
        assert err.value.loc == loc
    with pytest.raises(RequestError, match="takes texts, not sensor windows"):
        Predictor(registry).predict("log-fault", [[[1.0]]])


def test_maintie_multi_label_through_the_cli(cli, tmp_path):
    from transferline.sample_data import sample_path

    catalog = tmp_path / "catalog"
    code, _, err = cli("ingest", "maintie", sample_path("maintie"), "--name", "mie", "--catalog", catalog, "--quiet")
    assert code == 0, err
    code, out, err = cli("transfer", "--config", REPO / "examples" / "configs" / "text_classification.yaml",
                         "data.dataset=mie", "target.domains=[maintie]", "target.per_class=3", "epochs=1",
                         "data.spec_options.max_length=24", "--catalog", catalog, "--run-dir", tmp_path / "run",
                         "--quiet")
    assert code == 0, err
    assert "test_micro_f1" in out and "test_exact_match" in out
    code, out, err = cli("models", "register", tmp_path / "run", "--name", "mie", "--models", tmp_path / "models")
    assert code == 0, err
    from transferline.serve import Predictor

    reply = Predictor(tmp_path / "models").predict("mie", texts=["hydraulic pump not working"])
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    classes = meta["output"]["classes"]
    assert meta["output"]["kind"] == "labels" and len(reply["probabilities"][0]) == len(classes)
    expected = [classes[i] for i, p in enumerate(reply["probabilities"][0]) if p > 0.5]
    assert reply["labels"] == [expected]


def test_text_config_errors_name_the_field(cli, tmp_path):
    code, _, err = cli("transfer", "--config", REPO / "examples" / "configs" / "text_classification.yaml",
                       "data.spec_options.max_length=4000", "--catalog", tmp_path / "cat", "--run-dir", tmp_path / "r")
    assert code == 2 and "data.spec_options.max_length: tokens per text, an integer 8 to 512, not 4000" in err


@pytest.fixture(scope="module")
def two_site_log(tmp_path_factory):
    """The vendored maintenance log as two plants' logs in one text dataset (alternate rows)."""
    import csv

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import maintenance_log

    root = tmp_path_factory.mktemp("two-sites")
    header, *rows = list(csv.reader(open(maintenance_log(root / "log.csv"))))
    catalog = Catalog(root / "catalog")
    for i, site in enumerate(("site_a", "site_b")):
        with open(root / f"{site}.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([header, *rows[i::2]])
        catalog.ingest("log", create_reader("text")(root / f"{site}.csv", text_col="note", label_col="fault",
                                                    plant=site), append=i > 0)
    return catalog


@pytest.mark.parametrize("adaptation", ["mmd", "coral", "dann"])
def test_text_domains_adapt_with_l2sp(two_site_log, tmp_path, cli, adaptation):
    """Labelled texts of one plant, unlabelled texts of another: the alignment term between their
    MiniLM features (DANN: the domain classifier behind gradient reversal) is trained on, nonzero
    every epoch, next to the task, with L2-SP holding the encoder near its start; tested on the
    second plant's held-out texts."""
    code, out, err = cli("transfer", "--config", REPO / "examples" / "configs" / "text_classification.yaml",
                         "data.source.domains=[site_a]", "data.source.split=all", "target.domains=[site_b]",
                         "target.per_class=0", "target.unlabelled=true", f"adaptation={adaptation}",
                         "strategy=l2sp", "strategy.options.alpha=0.1", "epochs=2", "data.spec_options.max_length=24",
                         "--catalog", two_site_log.root, "--run-dir", tmp_path / "run", "--quiet", "--no-mlflow")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_samples"] == 96 and metrics["target_labelled_samples"] == 0  # 80 % of site_a's 120
    assert 0 <= metrics["test_macro_f1"] <= 1 and np.isfinite(metrics["feature_mmd"])
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    term = "train_domain" if adaptation == "dann" else "train_align"  # DANN: its domain classifier's loss
    assert len(history) == 2 and all(h[term] > 0 and np.isfinite(h["train_loss"]) for h in history)
    config = json.loads((tmp_path / "run" / "model.json").read_text())
    assert config["input"]["text"]["max_length"] == 24
