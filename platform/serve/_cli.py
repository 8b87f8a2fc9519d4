"""`transferline models ...`, `transferline serve` and `transferline predict`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", metavar="DIR", dest="models_root",
                   help="model registry directory (default: $TRANSFERLINE_MODELS, else ./transferline-models)")


def add_parsers(sub) -> None:
    models = sub.add_parser("models", help="the model registry: register, list, show, promote, delete")
    msub = models.add_subparsers(dest="action", required=True)
    reg = msub.add_parser("register", help="register a finished transfer run as the next version")
    reg.add_argument("run_dir", help="the folder of a finished transfer run (holds model.json)")
    reg.add_argument("--name", required=True, help="model name: letters, digits, -, _, . (at most 100)")
    reg.add_argument("--stage", choices=["staging", "production"], help="point this stage at the new version")
    _root_arg(reg)
    _root_arg(msub.add_parser("list", help="one line per model"))
    show = msub.add_parser("show", help="one version's entry (name, name@3 or name@production)")
    show.add_argument("ref", help="name, name@3 or name@production")
    _root_arg(show)
    promote = msub.add_parser("promote", help="point a stage at a version")
    promote.add_argument("ref", help="the version to promote: name@3")
    promote.add_argument("stage", choices=["staging", "production"], help="the stage to point at it")
    _root_arg(promote)
    delete = msub.add_parser("delete", help="delete a version (name@3) or a whole model (name)")
    delete.add_argument("ref", help="name@3 (one version) or name (the whole model)")
    _root_arg(delete)

    serve = sub.add_parser("serve", help="serve registered models over HTTP (Ray Serve, FastAPI)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument("--replicas", type=int, default=1, help="model-server replicas (with --max-replicas: the least)")
    serve.add_argument("--max-replicas", type=int,
                       help="autoscale between --replicas and this many replicas by requests in flight")
    serve.add_argument("--target-ongoing", type=int, default=32,
                       help="autoscaling: requests in flight per replica to aim at (default 32)")
    serve.add_argument("--haproxy", action="store_true",
                       help="Serve's HAProxy ingress on --port in place of its Python proxy (faster; its statistics "
                            "and metrics ports 8404 and 9101 listen on every interface)")
    serve.add_argument("--metrics-port", type=int, metavar="P",
                       help="Prometheus metrics per model (requests by status, latency and batch-size histograms) "
                            "and Ray's own on http://127.0.0.1:P/metrics (default: no metrics collected)")
    serve.add_argument("--models-per-replica", type=int, default=8, metavar="N",
                       help="models each replica keeps loaded, the least recently used unloaded first (default 8)")
    serve.add_argument("--no-batching", action="store_true",
                       help="answer each request on its own (default: batch concurrent requests per model)")
    serve.add_argument("--open-docs", action="store_true",
                       help="with TRANSFERLINE_API_KEY set, still answer /docs and /openapi.json without the key")
    _root_arg(serve)

    predict = sub.add_parser("predict", help="predict with a registered model (locally, or over HTTP with --url)")
    predict.add_argument("ref", help="name, name@3 or name@production")
    predict.add_argument("--input", required=True, type=Path,
                         help='JSON file, the request body: {"windows": [batch][time][signal], "signals": [...], '
                              '"groups": [...]}, {"images": [base64 PNG/JPEG], "heatmap": true}, {"texts": [...]}, or '
                              'for a model of several inputs {"inputs": {"de": {"windows": ...}, ...}}')
    predict.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    _root_arg(predict)


def run_models(args) -> int:
    from ..model_registry import ModelRegistry

    registry = ModelRegistry(args.models_root)
    if args.action == "register":
        entry = registry.register(args.run_dir, args.name, stage=args.stage)
        print(f"registered {entry.ref} ({entry.task['name']}, {entry.encoder['name']}, hash "
              f"{entry.content_hash[:12]}) → {registry.path(entry.name, entry.version)}")
        if entry.lineage.get("mlflow"):
            print(f"  from MLflow run {entry.lineage['mlflow']['run_id']} ({entry.lineage['mlflow']['tracking_uri']})")
    elif args.action == "list":
        names = registry.names()
        if not names:
            print(f"no models in {registry.root}")
        for name in names:
            entry = registry.get(name)
            stages = ", ".join(f"{k}={v}" for k, v in registry.stages(name).items()) or "-"
            metric = next((f"{k} {v:.3f}" for k, v in entry.metrics.items() if k.startswith("test_")), "")
            print(f"{name:24s} v{entry.version:<4d} {entry.task['name']:16s} {stages:28s} {metric}")
    elif args.action == "show":
        print(json.dumps(registry.get(args.ref).to_dict(), indent=2))
    elif args.action == "promote":
        print(json.dumps(registry.promote(args.ref, args.stage)))
    elif args.action == "delete":
        registry.delete(args.ref)
        print(f"deleted {args.ref}")
    return 0


def run_serve(args) -> int:
    import contextlib
    import signal
    import threading

    from ..errors import TransferlineError
    from ..model_registry._runtime import ort_providers, ort_threads
    from .app import OPEN_DOCS_ENV, application
    from .runtime import check_port_free, deploy, start

    ort_threads()  # the replicas' onnxruntime settings, checked before anything starts
    ort_providers()
    check_port_free(args.host, args.port)
    if args.metrics_port is not None:
        if os.environ.get("RAY_ADDRESS"):
            raise TransferlineError("--metrics-port sets up the embedded Ray's metrics; a cluster ($RAY_ADDRESS) "
                                    "exports its own on each node's metrics port")
        check_port_free("127.0.0.1", args.metrics_port, "--metrics-port")
    if args.open_docs:
        os.environ[OPEN_DOCS_ENV] = "1"  # the replicas inherit it
    done = threading.Event()
    stops = (signal.SIGINT, signal.SIGTERM)

    def on_signal(*_) -> None:
        done.set()

    def take_signals() -> None:
        for sig in stops:
            signal.signal(sig, on_signal)

    take_signals()
    from ray import serve

    try:
        app = application(args.models_root, batching=not args.no_batching, replicas=args.replicas,
                          max_replicas=args.max_replicas, target_ongoing=args.target_ongoing,
                          models_per_replica=args.models_per_replica)  # checked before Ray starts
        start(args.host, args.port, haproxy=args.haproxy, metrics_port=args.metrics_port)
        deploy(app, port=args.port, host=args.host)
        print(f"serving models from {args.models_root or 'the default registry'} on http://{args.host}:{args.port} "
              "(docs at /docs)" + (f", metrics on http://127.0.0.1:{args.metrics_port}/metrics" if args.metrics_port
                                   else "") + "; Ctrl-C stops", flush=True)
        while not done.is_set():
            # NOTE: Ray's core worker installs its own signal handlers after start-up (its SIGTERM
            # handler ends the process without Serve's shutdown); take both back every second so that
            # Ctrl-C and SIGTERM always stop the server cleanly.
            take_signals()
            done.wait(1.0)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise TransferlineError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    for sig in stops:  # a second signal must not cut the shutdown short
        signal.signal(sig, signal.SIG_IGN)

    def shutdown() -> None:
        with contextlib.suppress(Exception):
            serve.shutdown()

    stopper = threading.Thread(target=shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout=60)
    if stopper.is_alive():
        print("Serve did not shut down within 60 s; exiting anyway", flush=True)
        os._exit(1)
    print("stopped", flush=True)
    return 0


def run_predict(args) -> int:
    from ..errors import TransferlineError

    try:
        body = json.loads(args.input.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TransferlineError(f"--input {args.input}: {exc}") from None
    if not isinstance(body, dict):
        raise TransferlineError(f"--input {args.input}: expected a JSON object (the request body: windows, images, "
                                "texts or inputs)")
    if args.url:
        import httpx

        name, _, which = args.ref.partition("@")
        params = {"version": which} if which.isascii() and which.isdigit() else {"stage": which} if which else {}
        reply = httpx.post(f"{args.url.rstrip('/')}/v1/models/{name}/predict", json=body, params=params, timeout=60)
        if reply.status_code != 200:
            raise TransferlineError(f"{reply.status_code}: {reply.text}")
        out = reply.json()
    else:
        from .predictor import Predictor, RequestError

        try:
            out = Predictor(args.models_root).predict_body(args.ref.partition("@")[0], body,
                                                           version=_version(args.ref), stage=_stage(args.ref))
        except RequestError as exc:
            raise TransferlineError(f"--input {args.input}: {exc}") from None
    json.dump(out, sys.stdout)
    print()
    return 0


def _version(ref: str) -> int | None:
    which = ref.partition("@")[2]
    return int(which) if which.isascii() and which.isdigit() else None


def _stage(ref: str) -> str | None:
    which = ref.partition("@")[2]
    return which if which and _version(ref) is None else None
