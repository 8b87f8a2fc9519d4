"""`transferline retrieve fit`: a problem → fix retriever from a dataset's (problem, action) pairs,
measured against BM25 and the zero-shot encoder on problems held out of training."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict

from .dense import Embedder, PairConfig, build_encoder, evaluate_dense, fit_pairs
from .pairs import BM25, load_pairs, rank_metrics

EPILOG = """example:
  transferline ingest maintnet path/to/maintnet --name maintnet
  transferline retrieve fit --dataset maintnet --out runs/maintnet-retriever
  transferline retrieve fit --config benchmarks/configs/text_retrieval.yaml --out runs/maintnet-retriever-2
  transferline transfer --config examples/configs/text_classification.yaml pretrained=runs/maintnet-retriever

Holds out --holdout of the distinct problem texts (all their rows) for the test and --val-fraction
of the rest for early stopping; prints recall@1, recall@10 and MRR of BM25, the zero-shot encoder
and the fine-tuned one on the held-out problems. The run folder holds encoder.safetensors (a
pretrained encoder for other runs), the index of the dataset's problems (index.safetensors,
index.json), model.json, metrics.json and config.yaml; `transferline models register RUN --name
NAME` serves it: POST /v1/models/NAME/predict {"texts": [...]} answers each text's --k nearest
past problems with the actions that fixed them. `--config RUN/config.yaml --out NEW` repeats a run."""


def fit_retrieval(catalog, dataset: str, out: str | os.PathLike, config: PairConfig, *, holdout: float = 0.2,
                  val_fraction: float = 0.1, split_seed: int = 0, progress: bool = False,
                  say: Callable[[str], None] = lambda line: None, workers: int | None = None,
                  address: str | None = None, cpus_per_worker: float = 1, k: int = 5, stream: bool = False,
                  gpus_per_worker: float = 0) -> dict:
    """Fine-tunes a retriever on ``dataset``'s pairs (with ``workers``: on that many Ray Train
    workers, which with ``stream`` read the training pairs through Ray Data) and writes the run
    folder ``out`` (which must not exist): the encoder, and an index of every distinct problem of the dataset with its actions, served ``k`` neighbours per text once
    registered; returns the test metrics of BM25, the zero-shot and the fine-tuned encoder."""
    import yaml

    from .._fs import new_run_folder
    from ..train.checkpoint import save_module
    from .store import write_index

    from ..errors import TransferlineError

    out = os.fspath(out)
    if os.path.exists(out):
        raise TransferlineError(f"{out} exists; pass a new --out folder")
    if k < 1:
        raise TransferlineError(f"--k: at least 1 neighbour per text, not {k}")
    if stream and not workers:
        raise TransferlineError("--stream feeds Ray Train workers: give --workers N too")
    if gpus_per_worker and not workers:
        raise TransferlineError("--gpus-per-worker is for Ray Train workers: give --workers N too")
    plan = None
    if stream:  # the driver reads the two text columns, then only the validation and test pairs
        from .stream import plan_pairs

        plan = plan_pairs(catalog, dataset, holdout=holdout, val_fraction=val_fraction, split_seed=split_seed)
        val, test = plan.pairs("val"), plan.pairs("test")
        training = f"{len(plan.split['train'])} training pairs (streamed through Ray Data)"
    else:
        pairs = load_pairs(catalog, dataset)
        rest, test = pairs.split(holdout, split_seed)
        train, val = rest.split(val_fraction, split_seed + 1)
        training = f"{len(train)} training pairs ({len(set(train.queries))} problems)"
    task = test.task()
    say(f"{dataset}: {training}, {len(val)} validation, test {len(task.queries)} problems against "
        f"{len(task.documents)} actions")
    metrics = {"bm25": rank_metrics(BM25(task.documents).scores(task.queries), task.relevant)}
    encoder, spec = build_encoder(config)
    metrics["zero_shot"] = evaluate_dense(Embedder(encoder, spec), test)
    if workers:
        from .ray_fit import fit_pairs_on_ray

        encoder, spec, fit = fit_pairs_on_ray(catalog, dataset, config, workers=workers, holdout=holdout,
                                              val_fraction=val_fraction, split_seed=split_seed, address=address,
                                              cpus_per_worker=cpus_per_worker, plan=plan, val=val,
                                              gpus_per_worker=gpus_per_worker)
    else:
        encoder, spec, fit = fit_pairs(train, val, config, progress=progress, report=lambda r: say(
            f"epoch {r['epoch']}: loss {r['train_loss']:.3f}, validation MRR {r['val_mrr']:.3f} ({r['seconds']:.0f} s)"))
    metrics["fine_tuned"] = evaluate_dense(Embedder(encoder, spec), test)
    for name, m in metrics.items():
        say(f"{name:10s} recall@1 {m['recall_at_1']:.3f}  recall@10 {m['recall_at_10']:.3f}  MRR {m['mrr']:.3f}")
    metrics["fit"] = fit
    with new_run_folder(out) as stage:
        save_module(stage, "encoder", encoder, {"encoder": encoder.name, "options": {}, "input": {"text": asdict(spec)},
                                                "objective": "pair_contrastive", "dataset": dataset})
        # the served index holds every problem of the dataset (streamed runs read them here, once)
        indexed = write_index(stage, Embedder(encoder, spec), load_pairs(catalog, dataset) if stream else pairs)
        (stage / "model.json").write_text(json.dumps({"kind": "retriever", "encoder": config.encoder,
                                                      "input": {"text": asdict(spec)}, "dataset": dataset, "k": k,
                                                      "indexed": indexed}, indent=2))
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        (stage / "config.yaml").write_text(yaml.safe_dump({"data": {"dataset": dataset, "holdout": holdout,
                                                                    "val_fraction": val_fraction,
                                                                    "split_seed": split_seed},
                                                           "retrieval": {**asdict(config), "k": k}},
                                                          sort_keys=False))
    return {"metrics": metrics, "out": out}


def add_parsers(sub) -> None:
    import argparse

    retrieve = sub.add_parser("retrieve", help="problem → fix retrieval from maintenance logs' (problem, action) pairs")
    rsub = retrieve.add_subparsers(dest="action", required=True)
    fit = rsub.add_parser("fit", help="fine-tune a text encoder on (problem, action) pairs; compare with BM25 and "
                                      "the zero-shot encoder on held-out problems", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--config", metavar="FILE", help="a YAML file with sections data (dataset, holdout, "
                                                      "val_fraction, split_seed) and retrieval (the flags below and "
                                                      "weight_decay, patience), e.g. a run folder's config.yaml; "
                                                      "flags given win over it")
    fit.add_argument("--dataset", help="a text dataset with paired texts (e.g. ingested with maintnet)")
    fit.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    fit.add_argument("--encoder", help="a text encoder (hf/<folder-or-name>; default hf/all-minilm-l6-v2)")
    fit.add_argument("--pretrained", help="a pretraining run folder whose encoder to start from")
    fit.add_argument("--max-length", type=int, help="tokens per text (default 32)")
    fit.add_argument("--epochs", type=int, help="at most this many epochs (default 3)")
    fit.add_argument("--batch-size", type=int, help="pairs per step; the others are its negatives (default 32)")
    fit.add_argument("--lr", type=float, help="AdamW learning rate (default 3e-5)")
    fit.add_argument("--temperature", type=float, help="InfoNCE temperature (default 0.05)")
    fit.add_argument("--holdout", type=float, help="share of problems held out for the test (default 0.2)")
    fit.add_argument("--val-fraction", type=float, help="share of the rest for early stopping (default 0.1)")
    fit.add_argument("--seed", type=int, help="batch order and the row drawn of each problem (default 0)")
    fit.add_argument("--k", type=int, help="neighbours the registered retriever answers per text (default 5)")
    from .._ray import add_ray_arguments

    add_ray_arguments(fit, "Ray Train (data-parallel workers, gradients averaged every step)",
                      "N training workers (default: in this process)", gpus=True)
    fit.add_argument("--stream", action="store_true", help="with --workers: the training pairs stream from the "
                                                           "catalog through Ray Data, each worker its own shard")
    fit.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME, else "
                                                      "./transferline-data)")


FIT_DATA = {"holdout": 0.2, "val_fraction": 0.1, "split_seed": 0}  # `retrieve fit`'s split unless set


def run_retrieve(args) -> int:
    from .._fitconfig import fit_settings
    from ..catalog import Catalog

    data, config, extra = fit_settings(args, "retrieval", PairConfig, FIT_DATA, {"k": 5})
    result = fit_retrieval(Catalog(args.catalog), data["dataset"], args.out, config, holdout=data["holdout"],
                           val_fraction=data["val_fraction"], split_seed=data["split_seed"],
                           progress=sys.stderr.isatty(), say=print, workers=args.workers, address=args.address,
                           cpus_per_worker=args.cpus_per_worker, k=extra["k"], stream=args.stream,
                           gpus_per_worker=args.gpus_per_worker)
    print(f"wrote {result['out']} (its encoder: pretrained={result['out']} in a text run's config; "
          f"transferline models register {result['out']} --name NAME serves its neighbours)")
    return 0
