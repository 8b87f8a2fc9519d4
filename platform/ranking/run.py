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

METHODS = ("logme", "hscore", "knn", "linear", "leep", "mean_rank")  # leep: classifier runs on classification targets


@dataclass
class Ranked:
    candidate: str
    scores: dict[str, float]
    seconds: float  # embedding the target samples and scoring them
    samples: int
    extra: dict = field(default_factory=dict)


def candidate_kind(candidate: Path) -> str:
    """``"encoder"`` (a pretraining run) or ``"classifier"`` (a transfer run with a class head, which
    LEEP scores too); anything else is refused, naming what is missing."""
    if not (candidate / "config.yaml").is_file():
        raise TransferlineError(f"candidate {candidate}: no config.yaml; give the folder of a finished pretraining "
                                "run (or of a classifier's transfer run)")
    if (candidate / "encoder.safetensors").is_file() and (candidate / "encoder.json").is_file():
        return "encoder"
    if (candidate / "model.safetensors").is_file() and (candidate / "model.json").is_file():
        try:
            meta = json.loads((candidate / "model.json").read_text())
        except ValueError as exc:
            raise TransferlineError(f"candidate {candidate}: damaged model.json ({exc})") from None
        if (meta.get("output") or {}).get("kind") == "class" and "kind" not in meta:
            return "classifier"
        raise TransferlineError(f"candidate {candidate}: a transfer run ranks only when its head classifies "
                                f"(this one's output is {(meta.get('output') or {}).get('kind')!r}); give its "
                                "pretraining run instead")
    raise TransferlineError(f"candidate {candidate}: no encoder.safetensors; give the folder of a finished "
                            "pretraining run (or of a classifier's transfer run)")


def target_config(candidate: Path, kind: str, dataset: str | None, domain: str | None, *, labelled_units: int = 0,
                  per_class: int = 0, seed: int = 0, catalog: str | None = None, overrides: list[str] = ()) -> dict:
    """The fine-tuning config of ``candidate`` (of :func:`candidate_kind` ``kind``) on the target: its
    data spec, encoder and task; the target's labelled samples alone (no source domains); a
    pretraining run's weights as ``pretrained`` (a classifier run's model is loaded by
    :func:`score_candidate`)."""
    from ..train import load_config

    if not labelled_units and not per_class:
        raise TransferlineError("rank needs labelled target samples: --labelled-units N (whole units) or "
                                "--per-class K")
    extra = [f"data.dataset={dataset}"] if dataset else []
    extra += [f'target.domains=["{domain}"]'] if domain else []
    extra += [f"catalog={catalog}"] if catalog else []
    extra += [f"pretrained={candidate}"] if kind == "encoder" else ["pretrained=null"]
    return load_config(candidate / "config.yaml", [
        "mode=transfer", "source.domains=null", "adaptation=source_only",
        f"target.labelled_units={labelled_units}", f"target.per_class={per_class}", f"seed={seed}",
        "progress=false", "tracking.mlflow=false", "data.streaming.enabled=false", *extra, *overrides])


def labelled_samples(config: dict, catalog=None):
    """The labelled target sets a fine-tuning run of ``config`` trains and validates on."""
    from ..train import prepare_data

    data = prepare_data(config, catalog)
    sets = [data.source_train] + ([data.source_val] if data.source_val is not data.source_train else [])
    return data, sets


def score_candidate(candidate: Path, kind: str, config: dict, data, sets, methods=METHODS[:-1],
                    device: str = "cpu") -> Ranked:
    """Embeds ``sets`` with the candidate's frozen encoder and scores the features; a classifier
    run's class probabilities give LEEP besides."""
    import torch

    from ..train.run import build_encoder
    from .scores import h_score, knn_score, leep, linear_score, logme

    unknown = sorted(set(methods) - set(METHODS[:-1]))
    if unknown:
        raise TransferlineError(f"unknown ranking method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    t0 = time.perf_counter()
    device = torch.device(device)
    regression = not data.classes
    head = None
    if kind == "classifier":
        from safetensors.torch import load_file

        from ..model_registry._export import build_inference_model

        meta = json.loads((candidate / "model.json").read_text())
        model = build_inference_model(meta, load_file(str(candidate / "model.safetensors")), data.input_spec())
        model.to(device)
        encoder, head = model.encoder, lambda f: model._predict(model.head(f))
    else:
        encoder = build_encoder(config, data, device).eval()
    features, probabilities = _embed(encoder, head, sets, device)
    labels = np.concatenate([np.asarray(s.labels) for s in sets])
    groups = _groups(sets)
    score = {"logme": lambda: logme(features, labels, regression=regression),
             "hscore": lambda: h_score(features, labels, regression=regression),
             "knn": lambda: knn_score(features, labels, groups, regression=regression),
             "linear": lambda: linear_score(features, labels, groups, regression=regression),
             "leep": lambda: leep(probabilities, labels) if probabilities is not None and not regression else None}
    scores = {m: value for m in methods if (value := score[m]()) is not None}
    return Ranked(str(candidate), scores, time.perf_counter() - t0, len(labels),
                  {"task": config["task"]["name"], "feature_dim": int(features.shape[1])})


def _embed(encoder, head, sets, device) -> tuple[np.ndarray, np.ndarray | None]:
    """Features of every sample (and the head's class probabilities when there is a head)."""
    import torch

    features, probabilities = [], []
    with torch.no_grad():
        for samples in sets:
            for batch in samples.batches(1024):
                f = encoder(batch.to(device).inputs)
                features.append(f.float().cpu())
                if head is not None:
                    probabilities.append(head(f).float().cpu())
    return torch.cat(features).numpy(), torch.cat(probabilities).numpy() if head is not None else None


def mean_rank(ranked: list[Ranked], methods) -> None:
    """Adds ``mean_rank``: each candidate's mean rank over ``methods`` (1 = worst), so that higher is
    better like every score."""
    from scipy.stats import rankdata

    ranks = np.mean([rankdata([r.scores[m] for r in ranked]) for m in methods], axis=0)
    for r, value in zip(ranked, ranks):
        r.scores["mean_rank"] = float(value)


def rank_candidates(candidates: list[Path], dataset: str | None, domain: str | None, *, methods=METHODS,
                    labelled_units: int = 0, per_class: int = 0, seed: int = 0, catalog: str | None = None,
                    overrides: list[str] = (), progress: bool = True, device: str = "cpu") -> list[Ranked]:
    """Scores every candidate for the target (embedding on ``device``); the target samples are
    prepared once per distinct data config."""
    from tqdm.auto import tqdm

    from ..catalog.store import resolve_root

    catalog = str(resolve_root(catalog))  # the user's catalog, not the one each candidate was pretrained from
    kinds = [candidate_kind(Path(c)) for c in candidates]  # every folder checked before any work
    base = [m for m in methods if m != "mean_rank"]
    prepared: dict[str, tuple] = {}
    ranked = []
    for candidate, kind in tqdm(list(zip(candidates, kinds)), desc="candidates", disable=not progress):
        config = target_config(Path(candidate), kind, dataset, domain, labelled_units=labelled_units,
                               per_class=per_class, seed=seed, catalog=catalog, overrides=list(overrides))
        key = json.dumps(config["data"], sort_keys=True, default=str)
        if key not in prepared:
            t0 = time.perf_counter()
            prepared[key] = (*labelled_samples(config), time.perf_counter() - t0)
        data, sets, prep_seconds = prepared[key]
        result = score_candidate(Path(candidate), kind, config, data, sets, base, device=device)
        result.extra["prepare_seconds"] = prep_seconds
        ranked.append(result)
    if "mean_rank" in methods and len(ranked) > 1:
        mean_rank(ranked, [m for m in base if all(m in r.scores for r in ranked)])  # the scores every candidate has
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
                                       "H-score, k-NN; LEEP for classifier runs)")
    rank.add_argument("--target", required=True, metavar="DATASET[:DOMAIN]",
                      help="the catalog dataset (and domain, e.g. cmapss:FD001) the encoders would be fine-tuned on")
    rank.add_argument("--candidates", nargs="+", required=True, metavar="RUN_DIR",
                      help="finished pretraining run folders, or transfer runs of classifiers (scored by LEEP too)")
    labelled = rank.add_mutually_exclusive_group(required=True)
    labelled.add_argument("--labelled-units", type=int, default=0, help="labelled target units (assets), drawn by --seed")
    labelled.add_argument("--per-class", type=int, default=0, help="labelled target samples of each class")
    rank.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="scores to compute")
    rank.add_argument("--seed", type=int, default=0, help="which labelled units are drawn")
    rank.add_argument("--device", default="cpu", help="where the encoders embed the samples: cpu, cuda, cuda:N")
    rank.add_argument("--json", metavar="FILE", help="write the ranking as JSON")
    rank.add_argument("--catalog", metavar="DIR",
                      help="catalog directory (default: $TRANSFERLINE_HOME, else ./transferline-data)")
    rank.add_argument("--quiet", action="store_true", help="no progress bar")
    rank.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for the target data")


def run_rank(args) -> int:
    dataset, _, domain = args.target.partition(":")
    ranked = rank_candidates([Path(c) for c in args.candidates], dataset or None, domain or None, methods=args.methods,
                             labelled_units=args.labelled_units, per_class=args.per_class, seed=args.seed,
                             catalog=args.catalog, overrides=args.overrides, progress=not args.quiet,
                             device=args.device)
    shown = [m for m in args.methods if any(m in r.scores for r in ranked)]
    order = "mean_rank" if "mean_rank" in shown else shown[0]
    ranked.sort(key=lambda r: -r.scores[order])
    width = max(len(r.candidate) for r in ranked)
    print(f"{args.target}: {ranked[0].samples} labelled samples; ranked by {order} (higher is better)")
    print(f"  {'#':>2s}  {'candidate':<{width}s}  " + "  ".join(f"{m:>9s}" for m in shown) + "  seconds")
    for i, r in enumerate(ranked, 1):
        print(f"  {i:>2d}  {r.candidate:<{width}s}  " + "  ".join(f"{r.scores[m]:9.4g}" if m in r.scores else
                                                                 f"{'-':>9s}" for m in shown)
              + f"  {r.seconds:7.2f}")
    if args.json:
        out = {"target": args.target, "ranked_by": order, "methods": shown,
               "candidates": [{"rank": i, "run_dir": r.candidate, "scores": r.scores, "seconds": r.seconds,
                               "samples": r.samples, **r.extra} for i, r in enumerate(ranked, 1)]}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"→ {args.json}")
    return 0
