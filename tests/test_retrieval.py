"""Problem → fix retrieval: ranking metrics by hand-checked cases, the split by problem text, BM25,
contrastive fine-tuning on the vendored MaintNet pairs (it learns them, and its encoder serves as a
pretrained encoder), the CLI, and bad input named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from transferline.retrieval import BM25, Pairs, rank_metrics


def test_rank_metrics_by_hand():
    scores = np.array([[0.9, 0.5, 0.1],   # relevant {0}: rank 1
                       [0.9, 0.5, 0.1],   # relevant {2}: rank 3
                       [0.2, 0.7, 0.7]])  # relevant {1, 2}: the best relevant is tied first: rank 1
    m = rank_metrics(scores, [{0}, {2}, {1, 2}], ks=(1, 2))
    assert m["recall_at_1"] == pytest.approx(2 / 3) and m["recall_at_2"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3) and m["queries"] == 3 and m["documents"] == 3


def test_split_keeps_each_problem_on_one_side():
    pairs = Pairs(["a", "a", "b", "c", "c", "c", "d", "e"], [f"fix{i}" for i in range(8)], [str(i) for i in range(8)])
    rest, held = pairs.split(0.4, seed=0)
    assert len(rest) + len(held) == 8 and not set(rest.queries) & set(held.queries)
    assert len(set(held.queries)) == 2  # 40 % of 5 problems
    task = pairs.task()
    assert task.queries == ["a", "b", "c", "d", "e"] and task.relevant[2] == {3, 4, 5}
    with pytest.raises(ValueError, match="held-out fraction"):
        pairs.split(1.0, 0)


def test_bm25_finds_the_action_sharing_the_problem_words():
    docs = ["replaced left magneto", "tightened oil filter", "cleaned spark plugs"]
    scores = BM25(docs).scores(["oil filter loose", "spark plugs fouled"])
    assert scores.argmax(1).tolist() == [1, 2]


@pytest.fixture(scope="module")
def maintnet(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("mn-cat"))
    catalog.ingest("mn", create_reader("maintnet")(sample_path("maintnet")))
    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    return catalog


@pytest.mark.slow
def test_fine_tuning_learns_the_pairs_and_its_encoder_is_a_pretrained_encoder(maintnet, tmp_path):
    import torch

    from transferline.retrieval import Embedder, PairConfig, evaluate_dense, fit_pairs, load_pairs
    from transferline.retrieval.dense import build_encoder
    from transferline.train.checkpoint import save_module

    torch.set_num_threads(2)
    pairs = load_pairs(maintnet, "mn")
    assert len(pairs) == 300
    train, val = pairs.split(0.2, 0)
    config = PairConfig(epochs=2, batch_size=16, lr=1e-4, max_length=32)
    encoder, spec = build_encoder(config)
    before = evaluate_dense(Embedder(encoder, spec), train)
    tuned, spec, fit = fit_pairs(train, val, config)
    after = evaluate_dense(Embedder(tuned, spec), train)
    assert after["mrr"] > before["mrr"] + 0.1, (before, after)  # the training pairs are learned
    assert fit["epochs_run"] == 2 and fit["val_mrr"] == max(r["val_mrr"] for r in fit["history"])
    save_module(tmp_path, "encoder", tuned, {"encoder": tuned.name})
    again, _ = build_encoder(PairConfig(max_length=32, pretrained=str(tmp_path)))
    np.testing.assert_allclose(Embedder(again, spec)(train.queries[:4]), Embedder(tuned, spec)(train.queries[:4]),
                               atol=1e-5)


@pytest.mark.slow
def test_cli_fits_a_retriever_and_names_bad_input(maintnet, tmp_path, capsys):
    from transferline.cli import main

    home = ["--catalog", str(maintnet.root)]
    args = ["retrieve", "fit", "--dataset", "mn", "--epochs", "1", "--max-length", "32", "--batch-size", "16", *home]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert set(metrics) == {"bm25", "zero_shot", "fine_tuned", "fit"}
    assert all(0 < metrics[k]["mrr"] <= 1 for k in ("bm25", "zero_shot", "fine_tuned"))
    assert (tmp_path / "r" / "encoder.safetensors").is_file()
    out = capsys.readouterr().out
    assert "fine_tuned" in out and "recall@10" in out
    # the run folder's config.yaml repeats the run (`--config`); flags given win over it
    assert main(["retrieve", "fit", "--config", str(tmp_path / "r" / "config.yaml"), "--seed", "1", *home,
                 "--out", str(tmp_path / "r2")]) == 0
    first, again = (yaml.safe_load((tmp_path / run / "config.yaml").read_text()) for run in ("r", "r2"))
    assert first["retrieval"]["k"] == 5 and first["data"]["dataset"] == "mn"
    assert again == {**first, "retrieval": {**first["retrieval"], "seed": 1}}
    assert main([*args, "--out", str(tmp_path / "r")]) == 2  # exists
    assert main([*args[:3], "mie", *args[4:], "--out", str(tmp_path / "s")]) == 2
    assert "'mie': 0 row(s) with a paired text" in capsys.readouterr().err
    assert main([*args, "--temperature", "0", "--out", str(tmp_path / "t")]) == 2
    assert main([*args, "--k", "0", "--out", str(tmp_path / "u")]) == 2
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists() and not (tmp_path / "u").exists()

    # registered, it answers each text's nearest past problems with their actions
    from transferline.model_registry import ModelRegistry
    from transferline.retrieval import load_pairs
    from transferline.serve.predictor import Predictor

    task = load_pairs(maintnet, "mn").task()
    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(tmp_path / "r", "fixes")
    assert entry.output == {"kind": "neighbours", "k": 5, "indexed": len(task.queries)}
    assert {"model.onnx", "index.json"} <= set(entry.files)
    answer = Predictor(registry).predict("fixes", texts=[task.queries[7], "ENGINE RUNS ROUGH"])["predictions"]
    assert [len(a) for a in answer] == [5, 5]
    assert answer[0][0]["problem"] == task.queries[7] and answer[0][0]["score"] > 0.999  # itself, first
    assert answer[0][0]["actions"] == [task.documents[j] for j in sorted(task.relevant[7])]
    assert all(a["score"] >= b["score"] for row in answer for a, b in zip(row, row[1:]))


def test_streamed_pairs_are_the_in_memory_split_and_encoding(maintnet):
    """What `retrieve fit --stream` reads: the in-memory split by problem text (validation and test
    pairs alike), and every training pair tokenized as in memory, with equal hashes for equal texts."""
    from transferline.data.preprocess import TextPreprocess
    from transferline.retrieval import PairConfig, load_pairs
    from transferline.retrieval.dense import pair_spec
    from transferline.retrieval.stream import plan_pairs, read_task, text_hash

    pairs = load_pairs(maintnet, "mn")
    rest, test = pairs.split(0.3, 5)
    train, val = rest.split(0.2, 6)
    plan = plan_pairs(maintnet, "mn", holdout=0.3, val_fraction=0.2, split_seed=5)
    for part, want in (("val", val), ("test", test)):
        got = plan.pairs(part)
        assert (got.queries, got.answers, got.names) == (want.queries, want.answers, want.names)
    assert len(plan.split["train"]) == len(train) and not set(train.queries) & set(test.queries)
    spec = pair_spec(PairConfig(max_length=16))
    tasks = plan.tasks("train", pairs_per_task=60)
    assert len(tasks) == -(-len(train) // 60)
    blocks = [b for task in tasks for b in read_task({k: [v] for k, v in task.items()}, spec=spec, seed=0, block=16)]
    got = {k: np.concatenate([b[k] for b in blocks]) for k in ("q", "a", "q_hash", "a_hash")}
    tokenize = TextPreprocess(spec)
    want = {"q": tokenize(train.queries), "a": tokenize(train.answers), "q_hash": text_hash(train.queries),
            "a_hash": text_hash(train.answers)}
    rows = lambda e: sorted(b"".join(e[k][i].tobytes() for k in ("q", "a", "q_hash", "a_hash"))
                            for i in range(len(e["q"])))  # noqa: E731
    assert rows(got) == rows(want)  # the same pairs, encoded alike, in another (shuffled) order
    assert not np.array_equal(got["q"], want["q"])
    assert (text_hash(["OIL LEAK", "OIL LEAK", "oil leak"]) == text_hash(["OIL LEAK"])[0]).tolist() == [True, True,
                                                                                                       False]
