"""The `transferline` command line."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import TransferlineError

# Reader keywords settable from the CLI (--time-col → time_col) with their help; each is passed only when
# given, and only to readers that take it.
_READER_FLAGS = {
    "pattern": "waveforms: how file names carry labels and domains, e.g. '{label}_{speed}rpm_*.npy' ({label} "
               "the class, {split}/{asset} those columns, any other {name} a domain column, * anything)",
    "manifest": "waveforms, images: CSV listing the files (columns path, label; optional split, asset, "
                "sample_rate, further domain columns; images: optional plant, asset and ts, when each was "
                "taken, to join images with sensor windows and notes by time)",
    "key": "waveforms: arrays (.mat, .npz) or columns (.csv, .parquet) to read, one channel each, as "
           "comma-separated globs ('*_DE_time,*_FE_time'); default: the only array / every numeric column",
    "sample_rate": "waveforms: samples per second (required unless the manifest or the files carry it)",
    "classes": "waveforms: class names in id order (default: the labels found, sorted)",
    "sensor": "cwru: which accelerometer: DE (drive end, the default), FE (fan end) or BA (base); ingest "
              "each as its own dataset and join them by recording in a multimodal run",
    "label_level": "images: which folder level under SRC names the class (1 = first, the default; 0 = none)",
    "masks": "images: how masks are told from images: a file-name suffix ('_mask'), or 'folder:NAME' for "
             "a mask folder beside the images (default: _mask, same-stem .png beside a .jpg, folders "
             "masks/ground_truth)",
    "boxes": "images: box annotations: a folder of Pascal VOC .xml or YOLO .txt files, or a COCO .json",
    "annotations": "images: folder of Pascal VOC .xml files named like the images (same as --boxes)",
    "boxes_from_masks": "images: N pixels: each connected mask region of at least N pixels becomes a box of its "
                        "image's class (images without annotated boxes)",
    "plant": "plant recorded for every row (or a default where a column names it)",
    "asset": "asset recorded for every row (or a default where a column names it)",
    "layout": "csv, parquet: 'wide' (one row per time step, one column per signal) or 'long' "
              "(time, asset, signal, value)",
    "time_col": "csv, parquet, text: the timestamp column",
    "asset_col": "csv, parquet, text: the column naming each row's asset",
    "plant_col": "csv, parquet: the column naming each row's plant",
    "signal_col": "csv, parquet (long): the column naming the signal",
    "value_col": "csv, parquet (long): the value column",
    "quality_col": "csv, parquet (long): the OPC UA status-code column",
    "value_cols": "csv, parquet (wide): comma-separated signal columns (default: every other numeric column)",
    "label_cols": "csv, parquet (wide): comma-separated label columns (e.g. rul, fault)",
    "split_col": "csv, parquet: the column naming each row's split (train/test)",
    "split": "csv, parquet: the split of every row when no split column is given (default: all)",
    "text_col": "text: the free-text column",
    "id_col": "text: the document id column (default: row number)",
    "label_col": "text: the labels column ('|'-separated, or a list in JSONL)",
    "paired_col": "text: a second text paired with the first (e.g. the action taken)",
    "subsets": "cmapss: comma-separated subsets to read (default: all, e.g. FD001,FD002)",
    "setpoints": "cnc-mill: the experiments' table of set-points and outcomes (default: train.csv beside data/)",
    "run_table": "csv, parquet (wide): a CSV/Parquet with one row per run (asset): set-points and outcomes, "
                 "joined onto every row of that run",
    "run_key": "csv, parquet: the run table's column holding the asset id (default: --asset-col, else 'asset')",
    "setpoint_cols": "csv, parquet: comma-separated set-point columns of the run table (default: its numeric ones)",
    "outcome_cols": "csv, parquet: comma-separated outcome columns of the run table (default: the others)",
}
_FORMATS_HELP = """formats:
  waveforms  your own recordings: a folder of .mat/.npy/.npz/.wav/.csv/.parquet files, one recording each,
             with --pattern '{label}_{speed}.npy' or --manifest files.csv (see README: Your own data)
  images     a folder of images, one sub-folder per class (or --manifest), masks beside them, boxes
             from --boxes (Pascal VOC, YOLO or COCO)
  csv, parquet  historian exports: --layout wide (runs) or long (timeseries), with column options
  text       a CSV or JSONL log of maintenance text (--text-col, --label-col, ...)
  cmapss     the NASA C-MAPSS folder (train_FD00x.txt, test_FD00x.txt, RUL_FD00x.txt; --subsets)
  cwru       the CWRU bearing folder (<load>HP/*.mat); a MANIFEST.csv there (load_hp, rpm, class_index,
             class, file, cwru_id) lists the files instead of their names
  neu-det    NEU-DET (IMAGES/ and ANNOTATIONS/)
  maintie, maintnet, cnc-mill  those published datasets' folders

OPC UA: `transferline ingest opcua --help` (live capture) and `transferline ingest opcua-history --help`
(historian backfill)."""
_LIST_FLAGS = {"value_cols", "label_cols", "subsets", "classes", "setpoint_cols", "outcome_cols"}


def _catalog_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", metavar="DIR",
                        help="catalog directory (default: $TRANSFERLINE_HOME, else ./transferline-data)")


def build_parser() -> argparse.ArgumentParser:
    from transferline.connectors import list_formats

    parser = argparse.ArgumentParser(prog="transferline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="read a source into a catalog dataset", epilog=_FORMATS_HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ingest.add_argument("format", choices=list_formats(), help="what SRC holds (see below)")
    ingest.add_argument("src", help="file or folder to read")
    ingest.add_argument("--name", required=True, help="dataset name in the catalog")
    _catalog_arg(ingest)
    mode = ingest.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add new parts to an existing dataset")
    mode.add_argument("--replace", action="store_true", help="rebuild the dataset from this source")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.add_argument("--dry-run", action="store_true", help="print what was found and write nothing")
    mapping = ingest.add_argument_group("reader options (each names the formats it applies to)")
    for flag, help_text in _READER_FLAGS.items():
        mapping.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None, help=help_text)

    datasets = sub.add_parser("datasets", help="list, show or delete catalog datasets")
    dsub = datasets.add_subparsers(dest="action", required=True)
    _catalog_arg(dsub.add_parser("list", help="one line per dataset"))
    show = dsub.add_parser("show", help="a dataset's manifest")
    show.add_argument("name", help="the dataset")
    show.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    _catalog_arg(show)
    delete = dsub.add_parser("delete", help="remove a dataset")
    delete.add_argument("name", help="the dataset to remove")
    _catalog_arg(delete)

    for mode in ("pretrain", "transfer"):
        run = sub.add_parser(mode, help=f"{mode} from a config file plus key=value overrides")
        run.add_argument("--config", help="YAML config (see examples/configs, benchmarks/configs)")
        run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                         help="dotted overrides, e.g. adaptation=dann encoder=cnn_small target.labelled_units=5")
        run.add_argument("--run-dir", help="where checkpoints and metrics go (default runs/<mode>-<time>)")
        run.add_argument("--quiet", action="store_true", help="no progress bars")
        track = run.add_argument_group("MLflow tracking (parameters, per-epoch metrics, artifacts)")
        track.add_argument("--mlflow-uri", metavar="URI",
                           help="tracking store: a folder, a server (http://HOST:5000) or any MLflow URI "
                                "(default: $MLFLOW_TRACKING_URI, else ./mlruns)")
        track.add_argument("--experiment", help="MLflow experiment name (default: transferline)")
        track.add_argument("--no-mlflow", action="store_true", help="do not track this run in MLflow")
        dist = run.add_argument_group("Ray Train (data-parallel workers)")
        dist.add_argument("--workers", type=int, help="train with N Ray Train workers (default: in this process)")
        dist.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per worker (NCCL); 0: CPU, gloo")
        dist.add_argument("--address", help="Ray cluster: 'auto', or ray://HOST:10001 (default: an embedded local Ray)")
        dist.add_argument("--cpus-per-worker", type=float, default=1,
                          help="CPUs each worker reserves (and its torch threads); default 1")
        dist.add_argument("--max-failures", type=int, default=0,
                          help="worker-group restarts allowed; each resumes from the last epoch's checkpoint")
        dist.add_argument("--storage", help="where Ray Train keeps checkpoints: a path every node sees, or "
                                            "s3://..., gs://... (default: a local temporary folder)")
        _catalog_arg(run)

    report = sub.add_parser("report", help="one HTML file (plots inline) about finished runs")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (pretrain or transfer)")
    report.add_argument("-o", "--out", help="the HTML file (default: report.html in the first run directory)")
    report.add_argument("--title", default="transferline runs", help="the report's heading")

    from transferline.connectors.opcua import _cli as opcua_cli

    opcua_cli.add_simulate_parser(sub)
    opcua_cli.add_cert_parser(sub)

    from .serve import _cli as serve_cli

    serve_cli.add_parsers(sub)
    from .process import _cli as process_cli

    process_cli.add_parsers(sub)
    from .inspection import _cli as inspection_cli

    inspection_cli.add_parsers(sub)
    from .retrieval import run as retrieval_cli

    retrieval_cli.add_parsers(sub)
    from .tagging import run as tagging_cli

    tagging_cli.add_parsers(sub)
    from .ranking import run as ranking_cli

    ranking_cli.add_parsers(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from .train import load_config, train_loop

    overrides = [*args.overrides, f"mode={args.command}"]
    if args.catalog:
        overrides.append(f"catalog={args.catalog}")
    if args.quiet:
        overrides.append("progress=false")
    if args.no_mlflow and (args.mlflow_uri or args.experiment):
        raise TransferlineError("--no-mlflow turns tracking off; --mlflow-uri and --experiment need it on")
    overrides += ["tracking.mlflow=false"] * args.no_mlflow
    overrides += [f"tracking.uri={json.dumps(args.mlflow_uri)}"] * bool(args.mlflow_uri)
    overrides += [f"tracking.experiment={json.dumps(args.experiment)}"] * bool(args.experiment)
    config = load_config(args.config, overrides)
    config["run_dir"] = args.run_dir or config.get("run_dir") or f"runs/{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    from .train.checkpoint import check_run_dir
    from .train.run import run_inputs

    check_run_dir(config["run_dir"], run_inputs(config))  # before any work: refused folders exit 2 at once

    def report(record: dict) -> None:
        shown = {k: v for k, v in record.items() if k not in ("epoch", "seconds", "best")}
        terms = "  ".join(f"{k} {v:.4g}" for k, v in shown.items() if isinstance(v, float))
        print(f"epoch {record['epoch']:>3} {record['seconds']:6.1f}s  {terms}{'  *' if record['best'] else ''}",
              flush=True)

    try:
        if args.workers:
            from .train import fit_on_ray

            print(f"{args.command} on Ray Train: {args.workers} worker(s)"
                  f"{f', {args.gpus_per_worker:g} GPU each' if args.gpus_per_worker else ', CPU'}", flush=True)
            metrics = fit_on_ray(config, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                                 cpus_per_worker=args.cpus_per_worker, address=args.address,
                                 max_failures=args.max_failures, storage=args.storage)
        elif args.gpus_per_worker or args.address or args.storage:
            raise TransferlineError("--gpus-per-worker, --address and --storage need --workers N")
        else:
            metrics = train_loop(config, report=report)
    except ValueError as exc:
        raise TransferlineError(str(exc)) from None
    print(f"\n{args.command} finished: {config['run_dir']}")
    print(format_metrics(metrics))
    tracked = Path(config["run_dir"]) / "mlflow.json"
    if tracked.is_file():
        run = json.loads(tracked.read_text())
        print(f"MLflow: run {run['run_id']} in experiment {run['experiment']!r} at {run['tracking_uri']}")
    return 0


def format_metrics(metrics: dict) -> str:
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in metrics.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def cmd_report(args: argparse.Namespace) -> int:
    from .train.report import write_report

    path = write_report(args.runs, args.out, title=args.title)
    print(f"report: {path.resolve()}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader

    reader = create_reader(args.format)
    params = inspect.signature(reader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())  # checked by the reader
    options = {}
    for flag in _READER_FLAGS:
        value = getattr(args, flag)
        if value is None:
            continue
        if flag not in params and not takes_any:
            raise TransferlineError(f"option --{flag.replace('_', '-')} does not apply to format {args.format!r}")
        options[flag] = [v.strip() for v in value.split(",") if v.strip()] if flag in _LIST_FLAGS else value
    plan = reader(os.path.abspath(args.src), **options)
    if plan.summary:
        print(plan.summary, flush=True)
    if args.dry_run:
        print(f"dry run: nothing written ({len(plan.parts)} part(s) would be ingested as {args.name!r})")
        return 0
    catalog = Catalog(args.catalog)
    result = catalog.ingest(args.name, plan, append=args.append, replace=args.replace, progress=not args.quiet)
    m = result.manifest
    rows = ", ".join(f"{k} {v:,}" for k, v in m.rows.items())
    print(f"{args.name}: {result.status} ({result.new_rows:,} new rows); {m.kind}, {rows}; {catalog.root / args.name}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from transferline.catalog import Catalog

    catalog = Catalog(args.catalog)
    if args.action == "list":
        names = catalog.names()
        if not names:
            print(f"no datasets in {catalog.root}")

        for name in names:
            try:
                m = catalog.manifest(name)
            except TransferlineError as exc:

                print(f"{name:24s} DAMAGED: {one_line(str(exc), 200)}")
                continue
            print(f"{name:24s} {m.kind:10s} {sum(m.rows.values()):>12,} rows {m.bytes / 1e6:9.2f} MB  {m.updated}")
        return 0
    if args.action == "delete":
        catalog.delete(args.name)
        print(f"deleted {args.name}")
        return 0
    m = catalog.manifest(args.name)
    if args.json:
        print(json.dumps(m.to_dict(), indent=2, default=str))
        return 0
    print(format_manifest(m, catalog.schema(args.name) if m.files else None))
    return 0


def format_manifest(m, schema=None) -> str:
    lines = [f"{m.name}  ({m.kind}, schema v{m.schema_version}, reader {m.reader})",
             f"  source   {m.source}", f"  created  {m.created}   updated {m.updated}",
             f"  hash     {m.content_hash[:16]}   {m.bytes / 1e6:.2f} MB in {len(m.files)} files",
             f"  domains  {', '.join(m.domain_columns) or '-'}", "  split         rows   assets"]
    assets = m.assets
    lines += [f"  {split:8s} {rows:>9,} {assets.get(split, 0):>8,}" for split, rows in m.rows.items()]
    lines += [f"  {role:9s}{', '.join(cols)}" for role, cols in m.roles.items() if cols]
    extra = m.extra or {}
    if extra.get("classes"):
        lines.append(f"  classes  {', '.join(map(str, extra['classes']))}")
    if extra.get("channels"):
        lines.append(f"  channels {', '.join(extra['channels'])}")
    spec = suggest_spec(m, schema)
    if spec:
        fields = ", ".join(f"{k}: {json.dumps(v) if not isinstance(v, str) or ' ' in v or v == '' else v}"
                           for k, v in spec.items() if v is not None)
        lines += ["", "a data spec to start from (config data.spec, or `data.spec_options.KEY=VALUE` on a preset):",
                  f"  data: {{dataset: {m.name}, spec: {{{fields}}}}}"]
    elif m.kind == "timeseries":
        lines += ["", "training reads runs, waveforms, images and text; pivot a timeseries dataset to runs first"]
    return "\n".join(lines)


def suggest_spec(manifest, schema=None) -> dict:
    """A data spec to start from for a dataset (``transferline datasets show``); ``schema`` (the
    dataset's columns) lets a runs spec list its numeric signal columns. Kept here, beside the
    command that prints it, so that `datasets show` does not import the training stack."""
    import pyarrow as pa

    domains = list(manifest.domain_columns or [])
    if manifest.kind == "waveforms":
        return {"kind": "waveforms", "length": 1024, "stride": 1024, "normalize": "window", "label": "label",
                "domain": domains[0] if domains else "plant"}
    if manifest.kind == "runs":
        roles = manifest.roles or {}
        labels = roles.get("labels") or []
        skip = {"split", "plant", "asset", "step", *labels, *(roles.get("settings") or [])}
        numeric = [f.name for f in schema or [] if f.name not in skip
                   and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]
        return {"kind": "runs", "length": 30, "stride": 1, "normalize": "group",
                "features": list(roles.get("sensors") or []) or numeric or "[your signal columns]",
                "label": labels[0] if labels else None, "domain": domains[0] if domains else "plant"}
    if manifest.kind == "images":
        return {"kind": "images", "size": [224, 224], "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    if manifest.kind == "text":
        return {"kind": "text", "tokenizer": "hf/all-minilm-l6-v2", "max_length": 128}
    return {}


def one_line(message: str, limit: int = 600) -> str:
    """An error message as one line of at most about ``limit`` characters."""
    text = " ".join(message.split())
    return text if len(text) <= limit else f"{text[: limit - 40]} ... ({len(text):,} characters in all)"


def main(argv: Sequence[str] | None = None) -> int:
    from transferline.connectors.opcua import _cli as opcua_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(argv) >= 2 and argv[0] == "ingest" and argv[1] in opcua_cli.COMMANDS:
            return opcua_cli.run_ingest(argv[1], argv[2:])
        from .inspection import _cli as inspection_cli
        from .process import _cli as process_cli
        from .retrieval import run as retrieval_cli
        from .serve import _cli as serve_cli
        from .ranking import run as ranking_cli
        from .tagging import run as tagging_cli

        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and args.command in ("pretrain", "transfer") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra  # key=value overrides on both sides of an option
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        handler = {"ingest": cmd_ingest, "datasets": cmd_datasets, "pretrain": cmd_train, "transfer": cmd_train,
                   "simulate": opcua_cli.run_simulate, "opcua-cert": opcua_cli.run_cert, "models": serve_cli.run_models,
                   "serve": serve_cli.run_serve, "predict": serve_cli.run_predict,
                   "process": process_cli.run_process, "optimize": process_cli.run_optimize,
                   "inspect": inspection_cli.run_inspect, "retrieve": retrieval_cli.run_retrieve,
                   "tag": tagging_cli.run_tag, "rank": ranking_cli.run_rank, "report": cmd_report}[args.command]
        return handler(args)
    except TransferlineError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # bad input met below the CLI's own checks
        if os.environ.get("TRANSFERLINE_DEBUG"):
            raise
        print(f"error: {one_line(str(exc)) or type(exc).__name__} (TRANSFERLINE_DEBUG=1 shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
