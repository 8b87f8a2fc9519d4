"""``transferline rank``: scores candidate pretrained encoders for a target without fine-tuning.

Each candidate is a finished pretraining run (its ``encoder.safetensors``, ``encoder.json`` and
``config.yaml``). The target's labelled samples are the ones a fine-tuning run would train on
(``target.labelled_units`` whole units, or ``target.per_class`` samples of each class), prepared
with the candidate's own data spec and normalization; the frozen encoder embeds them and each
score (:mod:`transferline.ranking.scores`) says how well the features predict the labels.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferlineError

METHODS = ("logme", "hscore", "knn", "mean_rank")


@dataclass
class Ranked:
    candidate: str
    scores: dict[str, float]
    seconds: float  # embedding the target samples and scoring them
    samples: int
    extra: dict = field(default_factory=dict)


def target_config(candidate: Path, dataset: str | None, domain: str | None, *, labelled_units: int = 0,
                  per_class: int = 0, seed: int = 0, catalog: str | None = None, overrides: list[str] = ()) -> dict:
    """The fine-tuning config of ``candidate`` on the target: its data spec, encoder and task; the
    target's labelled samples alone (no source domains); its weights as ``pretrained``."""
    from ..train import load_config

    for name in ("encoder.safetensors", "encoder.json", "config.yaml"):
        if not (candidate / name).is_file():
            raise TransferlineError(f"candidate {candidate}: no {name}; give the folder of a finished pretraining run")
    if not labelled_units and not per_class:
        raise TransferlineError("rank needs labelled target samples: --labelled-units N (whole units) or "
                                "--per-class K")
    extra = [f"data.dataset={dataset}"] if dataset else []
    extra += [f'target.domains=["{domain}"]'] if domain else []
    extra += [f"catalog={catalog}"] if catalog else []
    return load_config(candidate / "config.yaml", [
        "mode=transfer", "source.domains=null", "adaptation=source_only", f"pretrained={candidate}",
        f"target.labelled_units={labelled_units}", f"target.per_class={per_class}", f"seed={seed}",
        "progress=false", "tracking.mlflow=false", "data.streaming.enabled=false", *extra, *overrides])


def labelled_samples(config: dict, catalog=None):
    """The labelled target sets a fine-tuning run of ``config`` trains and validates on."""
    from ..train import prepare_data

    data = prepare_data(config, catalog)
    sets = [data.source_train] + ([data.source_val] if data.source_val is not data.source_train else [])
    return data, sets


def score_candidate(config: dict, data, sets, methods=METHODS[:-1], device: str = "cpu") -> Ranked:
    """Embeds ``sets`` with the candidate's frozen encoder and scores the features."""
    import torch

    from transferline.tasks import create_task

    from ..train import predict
    from ..train.run import build_encoder
    from .scores import h_score, knn_score, logme

    t0 = time.perf_counter()
    task = create_task(config["task"]["name"], **(config["task"].get("options") or {}))
    regression = not data.classes
    encoder = build_encoder(config, data, torch.device(device)).eval()
    features = np.concatenate([predict(encoder, s, torch.device(device)).numpy() for s in sets])
    labels = np.concatenate([np.asarray(s.labels) for s in sets])
    groups = _groups(sets)
    score = {"logme": lambda: logme(features, labels, regression=regression),
             "hscore": lambda: h_score(features, labels, regression=regression),
             "knn": lambda: knn_score(features, labels, groups, regression=regression)}
    unknown = sorted(set(methods) - set(score))
    if unknown:
        raise TransferlineError(f"unknown ranking method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    scores = {m: score[m]() for m in methods}
    return Ranked(config["pretrained"], scores, time.perf_counter() - t0, len(labels),
                  {"task": task.name, "feature_dim": int(features.shape[1])})


def mean_rank(ranked: list[Ranked], methods) -> None:
    """Adds ``mean_rank``: each candidate's mean rank over ``methods`` (1 = worst), so that higher is
    better like every score."""
    from scipy.stats import rankdata

    ranks = np.mean([rankdata([r.scores[m] for r in ranked]) for m in methods], axis=0)
    for r, value in zip(ranked, ranks):
        r.scores["mean_rank"] = float(value)


def rank_candidates(candidates: list[Path], dataset: str | None, domain: str | None, *, methods=METHODS,
                    labelled_units: int = 0, per_class: int = 0, seed: int = 0, catalog: str | None = None,
                    overrides: list[str] = (), progress: bool = True) -> list[Ranked]:
    """Scores every candidate for the target; the target samples are prepared once per distinct data config."""
    from tqdm.auto import tqdm

    from ..catalog.store import resolve_root

    catalog = str(resolve_root(catalog))  # the user's catalog, not the one each candidate was pretrained from
    base = [m for m in methods if m != "mean_rank"]
    prepared: dict[str, tuple] = {}
    ranked = []
    for candidate in tqdm(candidates, desc="candidates", disable=not progress):
        config = target_config(Path(candidate), dataset, domain, labelled_units=labelled_units, per_class=per_class,
                               seed=seed, catalog=catalog, overrides=list(overrides))
        key = json.dumps(config["data"], sort_keys=True, default=str)
        if key not in prepared:
            t0 = time.perf_counter()
            prepared[key] = (*labelled_samples(config), time.perf_counter() - t0)
        data, sets, prep_seconds = prepared[key]
        result = score_candidate(config, data, sets, base)
        result.extra["prepare_seconds"] = prep_seconds
        ranked.append(result)
    if "mean_rank" in methods and len(ranked) > 1:
        mean_rank(ranked, base)
    return ranked


def _groups(sets) -> np.ndarray | None:
    """The unit (asset) of every sample, as names, where the sets carry units with several samples."""
    names = []
    for s in sets:
        asset_names = getattr(s, "asset_names", None)
        if not asset_names:
            return None
        names.extend(np.asarray(asset_names, dtype=object)[np.asarray(s.assets)])
    return np.asarray(names).astype(str) if len(set(names)) < len(names) else None


def add_parsers(sub) -> None:
    rank = sub.add_parser("rank", help="score pretrained encoders for a target without fine-tuning (LogME, "
                                       "H-score, k-NN)")
    rank.add_argument("--target", required=True, metavar="DATASET[:DOMAIN]",
                      help="the catalog dataset (and domain, e.g. cmapss:FD001) the encoders would be fine-tuned on")
    rank.add_argument("--candidates", nargs="+", required=True, metavar="RUN_DIR",
                      help="finished pretraining run folders")
    labelled = rank.add_mutually_exclusive_group(required=True)
    labelled.add_argument("--labelled-units", type=int, default=0, help="labelled target units (assets), drawn by --seed")
    labelled.add_argument("--per-class", type=int, default=0, help="labelled target samples of each class")
    rank.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="scores to compute")
    rank.add_argument("--seed", type=int, default=0, help="which labelled units are drawn")
    rank.add_argument("--json", metavar="FILE", help="write the ranking as JSON")
    rank.add_argument("--catalog", metavar="DIR",
                      help="catalog directory (default: $TRANSFERLINE_HOME, else ./transferline-data)")
    rank.add_argument("--quiet", action="store_true", help="no progress bar")
    rank.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for the target data")


def run_rank(args) -> int:
    dataset, _, domain = args.target.partition(":")
    ranked = rank_candidates([Path(c) for c in args.candidates], dataset or None, domain or None, methods=args.methods,
                             labelled_units=args.labelled_units, per_class=args.per_class, seed=args.seed,
                             catalog=args.catalog, overrides=args.overrides, progress=not args.quiet)
    shown = [m for m in args.methods if m in ranked[0].scores]
    order = "mean_rank" if "mean_rank" in shown else shown[0]
    ranked.sort(key=lambda r: -r.scores[order])
    width = max(len(r.candidate) for r in ranked)
    print(f"{args.target}: {ranked[0].samples} labelled samples; ranked by {order} (higher is better)")
    print(f"  {'#':>2s}  {'candidate':<{width}s}  " + "  ".join(f"{m:>9s}" for m in shown) + "  seconds")
    for i, r in enumerate(ranked, 1):
        print(f"  {i:>2d}  {r.candidate:<{width}s}  " + "  ".join(f"{r.scores[m]:9.4g}" for m in shown)
              + f"  {r.seconds:7.2f}")
    if args.json:
        out = {"target": args.target, "ranked_by": order, "methods": shown,
               "candidates": [{"rank": i, "run_dir": r.candidate, "scores": r.scores, "seconds": r.seconds,
                               "samples": r.samples, **r.extra} for i, r in enumerate(ranked, 1)]}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"→ {args.json}")
    return 0
