"""MaintNet problem → fix retrieval: BM25 vs zero-shot MiniLM-L6 vs MiniLM-L6 contrastively
fine-tuned on (problem, action) pairs, 2 CPU cores.

Config: ``benchmarks/configs/text_retrieval.yaml`` (the ``retrieve fit --config`` format); the
benchmark sets the seed. Split (fixed, stated in the results): 20 % of the distinct PROBLEM texts, with all their rows, held
out for the test (numpy seed 0); 10 % of the rest's problems for early stopping (seed 1). For each
held-out problem every distinct held-out action is a candidate; the relevant ones are the actions
logged for it. recall@k: share of problems with a relevant action among the first k; MRR: mean
reciprocal rank of the first relevant one. BM25 and zero-shot are deterministic (one run); the
fine-tuning runs over ``--seeds``.

Writes ``benchmarks/results/text_retrieval.json`` and ``.md``.
Usage: ``python benchmarks/text_retrieval.py [--seeds 0 1 2] [--epochs N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import CONFIGS, DEFAULT_DATA, markdown_table  # noqa: E402

TARGETS = {"finetuned_minus_zeroshot_recall_at_10": 0.10, "finetuned_minus_bm25_recall_at_10": 0.0}
KEYS = ("recall_at_1", "recall_at_10", "mrr")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-retrieval"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", type=Path, default=CONFIGS / "text_retrieval.yaml")
    parser.add_argument("--epochs", type=int, help="override the config's retrieval.epochs")
    parser.add_argument("--batch-size", type=int, help="override the config's retrieval.batch_size")
    parser.add_argument("--lr", type=float, help="override the config's retrieval.lr")
    args = parser.parse_args()
    started()
    import torch

    from transferline._fitconfig import read_fit_config
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.retrieval import BM25, Embedder, PairConfig, evaluate_dense, fit_pairs, load_pairs, rank_metrics
    from transferline.retrieval.dense import build_encoder

    torch.set_num_threads(2)
    split, retrieval = read_fit_config(args.config, "retrieval", PairConfig, ("k",))
    retrieval.pop("k", None)  # what a registered retriever answers; not measured here
    retrieval.update({k: v for k in ("epochs", "batch_size", "lr") if (v := getattr(args, k)) is not None})
    catalog = Catalog(args.catalog)
    if not catalog.exists("maintnet"):
        catalog.ingest("maintnet", create_reader("maintnet")(args.data / "maint_text" / "maintnet"))
    pairs = load_pairs(catalog, split["dataset"])
    rest, test = pairs.split(split["holdout"], split["split_seed"])
    train, val = rest.split(split["val_fraction"], split["split_seed"] + 1)
    task = test.task()
    print(f"MaintNet: {len(pairs)} pairs; train {len(train)} ({len(set(train.queries))} problems), validation "
          f"{len(val)}, test {len(task.queries)} problems against {len(task.documents)} actions", flush=True)

    t0 = time.perf_counter()
    bm25 = rank_metrics(BM25(task.documents).scores(task.queries), task.relevant)
    bm25["seconds"] = time.perf_counter() - t0
    encoder, spec = build_encoder(PairConfig(**retrieval))
    t0 = time.perf_counter()
    zero = evaluate_dense(Embedder(encoder, spec), test)
    zero["seconds"] = time.perf_counter() - t0
    print(f"BM25: {bm25}\nzero-shot: {zero}", flush=True)
    runs = []
    for seed in args.seeds:
        config = PairConfig(**{**retrieval, "seed": seed})
        tuned, spec, fit = fit_pairs(train, val, config, report=lambda r: print(
            f"  seed {seed} epoch {r['epoch']}: loss {r['train_loss']:.3f}, val MRR {r['val_mrr']:.3f} "
            f"({r['seconds']:.0f} s)", flush=True))
        m = evaluate_dense(Embedder(tuned, spec), test)
        runs.append({"seed": seed, **m, "fit": {k: v for k, v in fit.items() if k != "config"}})
        print(f"fine-tuned seed {seed}: {m}", flush=True)
    tuned = {k: spread([r[k] for r in runs]) for k in KEYS}
    summary = {"bm25_recall_at_10": bm25["recall_at_10"], "zeroshot_recall_at_10": zero["recall_at_10"],
               "finetuned_recall_at_10": tuned["recall_at_10"]["median"],
               "bm25_mrr": bm25["mrr"], "zeroshot_mrr": zero["mrr"], "finetuned_mrr": tuned["mrr"]["median"],
               "finetuned_minus_zeroshot_recall_at_10": tuned["recall_at_10"]["median"] - zero["recall_at_10"],
               "finetuned_minus_bm25_recall_at_10": tuned["recall_at_10"]["median"] - bm25["recall_at_10"],
               "targets": TARGETS, "test_problems": len(task.queries), "test_actions": len(task.documents),
               "train_pairs": len(train)}
    summary["targets_met"] = all(summary[k] >= v for k, v in TARGETS.items())
    rows = [["BM25 (rank-bm25, Okapi)", "1", *(f"{bm25[k]:.4f}" for k in KEYS)],
            ["MiniLM-L6 zero-shot", "1", *(f"{zero[k]:.4f}" for k in KEYS)],
            ["MiniLM-L6 fine-tuned (InfoNCE on pairs)", str(len(runs)),
             *(f"{tuned[k]['median']:.4f} ({tuned[k]['min']:.4f}-{tuned[k]['max']:.4f})" for k in KEYS)]]
    table = markdown_table(["retriever", "runs", "recall@1", "recall@10", "MRR"], rows)
    table += (f"\n\n{len(task.queries)} held-out problems against {len(task.documents)} held-out actions; fine-tuned "
              f"on {len(train)} pairs, {retrieval['epochs']} epochs at most, median (min-max) over seeds {args.seeds}. Targets: "
              f"fine-tuned recall@10 >= zero-shot + {TARGETS['finetuned_minus_zeroshot_recall_at_10']} and >= BM25 "
              f"({'met' if summary['targets_met'] else 'missed'}).")
    config = {"seeds": args.seeds, "config_file": "benchmarks/configs/text_retrieval.yaml"
              if args.config == CONFIGS / "text_retrieval.yaml" else str(args.config),
              "pair_config": asdict(PairConfig(**retrieval)),
              "split": "distinct PROBLEM texts: 20 % test (numpy seed 0), 10 % of the rest validation (seed 1)"}
    write_results("text_retrieval", config, summary, {"bm25": bm25, "zero_shot": zero, "fine_tuned": tuned,
                                                      "runs": runs}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
