"""`transferline tag`: entity tagging of a text dataset with spans (``tag fit``), and domain-adaptive
masked-language-model pretraining of a text encoder on any text datasets (``tag pretrain``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict

from .pretrain import MLMConfig, pretrain_mlm
from .spans import load_tagged
from .tagger import TagConfig, evaluate_tagger, fit_tagger

EPILOG_FIT = """example:
  transferline ingest maintie path/to/maintie --name maintie
  transferline tag pretrain --datasets maintie maintnet --out runs/maint-dapt
  transferline tag fit --dataset maintie --depth 1 --pretrained runs/maint-dapt --out runs/maintie-tagger
  transferline tag fit --config benchmarks/configs/text_entities.yaml --out runs/maintie-tagger-2

Holds out --holdout of the texts for the test and --val-fraction of the rest for early stopping on
the span F1; prints the test span precision, recall and F1 (seqeval, exact type and boundaries) and
each type's. Nested spans are flattened to the outermost. The run folder holds model.safetensors
and model.json (tags, tokenizer, max length), metrics.json and config.yaml; `transferline models
register RUN --name NAME` exports it (TorchScript, ONNX) for serving, which answers each text's
spans with character offsets. `--config RUN/config.yaml --out NEW` repeats a run."""

EPILOG_PRETRAIN = """Masked language modelling (--objective masked) or NT-Xent over two views of each text
(--objective contrastive: abbreviation swaps from MaintNet's aviation lexicon or --lexicon CSV,
then token dropout) on every distinct text (and paired text) of the datasets; the run folder's
encoder.safetensors starts other runs (--pretrained, or pretrained= in a text run's config). Texts
later used as a test set should be left out (--exclude-holdout-of)."""


FIT_DATA = {"holdout": 0.1, "val_fraction": 0.1, "split_seed": 0}  # `tag fit`'s split unless set


def _guard(out) -> str:
    out = os.fspath(out)
    if os.path.exists(out):
        from ..errors import TransferlineError

        raise TransferlineError(f"{out} exists; pass a new --out folder")
    return out


def fit_tagging(catalog, dataset: str, out: str | os.PathLike, config: TagConfig, *, holdout: float = 0.1,
                val_fraction: float = 0.1, split_seed: int = 0, progress: bool = False,
                say: Callable[[str], None] = lambda line: None, workers: int | None = None,
                address: str | None = None, cpus_per_worker: float = 1, stream: bool = False,
                gpus_per_worker: float = 0) -> dict:
    """Trains a tagger on ``dataset`` (with ``workers``: on that many Ray Train workers, which with
    ``stream`` read the training texts through Ray Data), writes the run folder ``out`` (which must
    not exist) and returns the test span scores."""
    import yaml

    from .._fs import new_run_folder
    from ..errors import TransferlineError
    from ..train.checkpoint import save_module

    out = _guard(out)
    if stream and not workers:
        raise TransferlineError("--stream feeds Ray Train workers: give --workers N too")
    if gpus_per_worker and not workers:
        raise TransferlineError("--gpus-per-worker is for Ray Train workers: give --workers N too")
    plan = None
    if stream:  # the driver reads the spans column, then only the validation and test texts
        from .stream import plan_tagging

        plan = plan_tagging(catalog, dataset, config.depth, holdout=holdout, val_fraction=val_fraction,
                            split_seed=split_seed)
        n_train, val, test, n_types = len(plan.split["train"]), plan.texts("val"), plan.texts("test"), \
            (len(plan.tag_names) - 1) // 2
    else:
        data = load_tagged(catalog, dataset, config.depth)
        rest, test = data.holdout(holdout, split_seed)
        train, val = rest.holdout(val_fraction, split_seed + 1)
        n_train, n_types = len(train), len(data.types)
    say(f"{dataset}: {n_train} training texts{' (streamed through Ray Data)' if stream else ''}, {len(val)} "
        f"validation, {len(test)} test; {n_types} entity types at depth {config.depth}")
    if workers:
        from .ray_fit import fit_tagger_on_ray

        tagger, spec, fit = fit_tagger_on_ray(catalog, dataset, config, workers=workers, holdout=holdout,
                                              val_fraction=val_fraction, split_seed=split_seed, address=address,
                                              cpus_per_worker=cpus_per_worker, plan=plan, val=val,
                                              gpus_per_worker=gpus_per_worker)
    else:
        tagger, spec, fit = fit_tagger(train, val, config, progress=progress, report=lambda r: say(
            f"epoch {r['epoch']}: loss {r['train_loss']:.3f}, validation span F1 {r['val_f1']:.3f} ({r['seconds']:.0f} s)"))
    scores = evaluate_tagger(tagger, spec, test)
    say(f"test span F1 {scores['f1']:.3f} (precision {scores['precision']:.3f}, recall {scores['recall']:.3f}, "
        f"{scores['spans']} spans)")
    for name, s in sorted(scores["per_type"].items(), key=lambda kv: -kv[1]["support"]):
        say(f"  {name:40s} F1 {s['f1']:.3f}  ({s['support']} spans)")
    metrics = {"test": scores, "fit": fit}
    with new_run_folder(out) as stage:
        save_module(stage, "model", tagger, {"kind": "tagger", "encoder": config.encoder, "tags": tagger.tag_names,
                                              "input": {"text": asdict(spec)}, "depth": config.depth,
                                              "dataset": dataset, "flattening": "outermost span"})
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        (stage / "config.yaml").write_text(yaml.safe_dump({"data": {"dataset": dataset, "holdout": holdout,
                                                                    "val_fraction": val_fraction,
                                                                    "split_seed": split_seed},
                                                           "tagging": asdict(config)}, sort_keys=False))
    return {"test": scores, "fit": fit, "out": out}


def dataset_texts(catalog, datasets: list[str], exclude: dict[str, set[str]] | None = None) -> list[str]:
    """Every text and paired text of ``datasets``, less the doc ids in ``exclude[dataset]``."""
    texts = []
    for name in datasets:
        table = catalog.read(name, columns=["doc_id", "text", "paired_text"])
        skip = (exclude or {}).get(name, set())
        for doc, text, paired in zip(*(table.column(c).to_pylist() for c in ("doc_id", "text", "paired_text"))):
            if doc not in skip:
                texts += [t for t in (text, paired) if t]
    return texts


def pretrain_texts(catalog, datasets: list[str], out: str | os.PathLike, config: MLMConfig, *,
                   exclude: dict[str, set[str]] | None = None, progress: bool = False,
                   say: Callable[[str], None] = lambda line: None) -> dict:
    """Pretraining on ``datasets``' texts (``config.objective``); writes ``out`` (encoder.safetensors)."""
    from .._fs import new_run_folder
    from ..train.checkpoint import save_module

    out = _guard(out)
    texts = dataset_texts(catalog, datasets, exclude)
    say(f"{len(texts)} texts from {', '.join(datasets)} ({len(set(texts))} distinct)")
    encoder, spec, fit = pretrain_mlm(texts, config, progress=progress, report=lambda r: say(
        f"epoch {r['epoch']}: loss {r['train_loss']:.3f}, held-out {config.objective} loss {r['val_loss']:.3f}"
        + (f", masked-token accuracy {r['val_masked_accuracy']:.3f}" if config.objective == "masked" else "")
        + f" ({r['seconds']:.0f} s)"))
    with new_run_folder(out) as stage:
        save_module(stage, "encoder", encoder, {"encoder": config.encoder, "options": {},
                                                "input": {"text": asdict(spec)}, "objective": config.objective,
                                                "datasets": datasets})
        (stage / "metrics.json").write_text(json.dumps(fit, indent=2, default=float))
    return {"fit": fit, "out": out}


def add_parsers(sub) -> None:
    import argparse

    tag = sub.add_parser("tag", help="entity tagging of maintenance texts, and text-encoder pretraining")
    tsub = tag.add_subparsers(dest="action", required=True)
    fit = tsub.add_parser("fit", help="train an entity tagger (BIO spans) on a text dataset with spans",
                          epilog=EPILOG_FIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--config", metavar="FILE", help="a YAML file with sections data (dataset, holdout, "
                                                      "val_fraction, split_seed) and tagging (the flags below and "
                                                      "weight_decay, dropout), e.g. a run folder's config.yaml; "
                                                      "flags given win over it")
    fit.add_argument("--dataset", help="a text dataset with entity spans (e.g. ingested with maintie)")
    fit.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    fit.add_argument("--depth", type=int, help="entity type levels kept: 1 top-level types, 2 the first "
                                               "two levels, 0 full paths (default 1)")
    fit.add_argument("--encoder", help="a text encoder (hf/<folder-or-name>; default hf/all-minilm-l6-v2)")
    fit.add_argument("--pretrained", help="a run folder whose encoder.safetensors to start from")
    fit.add_argument("--max-length", type=int, help="sub-word tokens per text (default 48)")
    fit.add_argument("--epochs", type=int, help="at most this many epochs (default 30)")
    fit.add_argument("--batch-size", type=int, help="texts per step (default 16)")
    fit.add_argument("--lr", type=float, help="encoder learning rate (default 1e-4)")
    fit.add_argument("--head-lr", type=float, help="head learning rate (default 1e-3)")
    fit.add_argument("--freeze-epochs", type=int, help="epochs training the head alone before the "
                                                       "encoder is unfrozen (default 0)")
    fit.add_argument("--patience", type=int, help="epochs without a better validation F1 before "
                                                  "stopping (default 6)")
    fit.add_argument("--holdout", type=float, help="share of texts held out for the test (default 0.1)")
    fit.add_argument("--val-fraction", type=float, help="share of the rest for early stopping (default 0.1)")
    fit.add_argument("--seed", type=int, help="head initialisation and batch order (default 0)")
    from .._ray import add_ray_arguments

    add_ray_arguments(fit, "Ray Train (data-parallel workers, gradients averaged every step)",
                      "N training workers (default: in this process)", gpus=True)
    fit.add_argument("--stream", action="store_true", help="with --workers: the training texts stream from the "
                                                           "catalog through Ray Data, each worker its own shard")
    pre = tsub.add_parser("pretrain", help="pretrain a text encoder on text datasets (masked language modelling or "
                                           "contrastive views)",
                          epilog=EPILOG_PRETRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    pre.add_argument("--datasets", nargs="+", required=True, help="text datasets whose texts to learn from")
    pre.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    pre.add_argument("--encoder", default="hf/all-minilm-l6-v2", help="a text encoder (hf/<folder-or-name>)")
    pre.add_argument("--max-length", type=int, default=32, help="sub-word tokens per text (default 32)")
    pre.add_argument("--epochs", type=int, default=3, help="at most this many epochs (default 3)")
    pre.add_argument("--batch-size", type=int, default=32, help="texts per step (default 32)")
    pre.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate (default 5e-5)")
    pre.add_argument("--objective", choices=["masked", "contrastive"], default="masked",
                     help="masked language modelling, or NT-Xent over two augmented views (default masked)")
    pre.add_argument("--ratio", type=float, default=0.15, help="masked: share of tokens masked (default 0.15)")
    pre.add_argument("--drop", type=float, default=0.1, help="contrastive: token dropout (default 0.1)")
    pre.add_argument("--swap", type=float, default=0.5, help="contrastive: chance to swap each lexicon word or "
                                                             "phrase for its counterpart (default 0.5)")
    pre.add_argument("--lexicon", help="contrastive: abbreviation CSV (columns Abbreviated, Standard_Description; "
                                       "default MaintNet's aviation list)")
    pre.add_argument("--exclude-holdout-of", metavar="DATASET", help="leave out the texts that `tag fit` on this "
                                                                     "dataset holds out for its test (same --holdout)")
    pre.add_argument("--holdout", type=float, default=0.1, help="with --exclude-holdout-of: that run's --holdout "
                                                                "(default 0.1)")
    pre.add_argument("--seed", type=int, default=0, help="held-out texts, batch order and masks (default 0)")
    for p in (fit, pre):
        p.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME, else "
                                                        "./transferline-data)")


def run_tag(args) -> int:
    from .._fitconfig import fit_settings
    from ..catalog import Catalog
    from ..errors import TransferlineError

    catalog = Catalog(args.catalog)
    if args.action == "fit":
        data, config, _ = fit_settings(args, "tagging", TagConfig, FIT_DATA)
        result = fit_tagging(catalog, data["dataset"], args.out, config, holdout=data["holdout"],
                             val_fraction=data["val_fraction"], split_seed=data["split_seed"],
                             progress=sys.stderr.isatty(), say=print, workers=args.workers, address=args.address,
                             cpus_per_worker=args.cpus_per_worker, stream=args.stream,
                             gpus_per_worker=args.gpus_per_worker)
        print(f"wrote {result['out']}")
        return 0
    options = {"drop": args.drop, "swap": args.swap, **({"lexicon": args.lexicon} if args.lexicon else {})} \
        if args.objective == "contrastive" else {}
    try:
        config = MLMConfig(encoder=args.encoder, objective=args.objective, options=options, max_length=args.max_length,
                           ratio=args.ratio, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    except ValueError as exc:
        raise TransferlineError(str(exc)) from None
    exclude = None
    if args.exclude_holdout_of:
        held = load_tagged(catalog, args.exclude_holdout_of).holdout(args.holdout, 0)[1]
        exclude = {args.exclude_holdout_of: set(held.names)}
    result = pretrain_texts(catalog, args.datasets, args.out, config, exclude=exclude,
                            progress=sys.stderr.isatty(), say=print)
    print(f"wrote {result['out']} (its encoder: --pretrained {result['out']})")
    return 0
