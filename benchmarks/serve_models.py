"""Many registered models behind one replica set: what loading on demand (LRU) costs.

Two short real training runs on the vendored C-MAPSS sample (1D-CNN RUL models, ``cnn_small``)
are registered ``--models`` times in all, under names ``plant-000`` ... (even numbers from the
first run, odd from the second), as the platform registers any run: files copied and hashed, ONNX
exported and checked against eager. transferline's Serve application (one replica, Serve's
throughput-optimized path, the default ``transferline serve``) then serves them over real HTTP on
loopback, keeping ``--models-per-replica`` of them loaded at a time (``@serve.multiplexed``, LRU).

Measured, in order:
  registration   seconds per ``ModelRegistry.register`` (copy, hash, ONNX export and check)
  cold           one request to every model in turn, each one not loaded: latency from the
                 client (request, registry lookup, files checked, ONNX session, batching
                 decision, answer); every answer is checked against the model's own run
  warm           a second request to each of the models still loaded
  memory         the replica's RSS (psutil) before any model, with 1, with ``--models-per-replica``
                 and after all of them went through (the LRU bound holds memory flat)
  load           ``--seconds`` of concurrent requests (the load generator is its own process) over
                 all models uniformly (most requests find their model unloaded), and over as many
                 models as the replica keeps (every request finds it loaded)
  listing        ``GET /v1/models`` page by page (100 per page) until the ``Link`` header ends

Writes ``benchmarks/results/serve_models.json`` and ``.md``. ``summary`` keys (issue 18): models,
models_per_replica, register_s_per_model, cold_request_ms (median; p90), warm_request_ms, load_ms_per_model
(cold − warm, medians), replica_rss_mb (none loaded, 1, full, after all), rss_mb_per_loaded_model,
uniform_req_per_s, hot_req_per_s, p99_ms (both), errors, list_all_ms. Usage: ``python
benchmarks/serve_models.py [--models 200] [--models-per-replica 8] [--seconds 10]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from serve_load import free_port, load, stop_server, tree_rss, window_bodies  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_models(root: Path, n: int) -> tuple[Path, list[float], dict]:
    """Registers ``n`` models from two runs; returns the registry, the seconds each registration
    took, and each run's prediction for the benchmark's first request body."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.model_registry import ModelRegistry
    from transferline.sample_data import sample_path
    from transferline.serve import Predictor
    from transferline.train import load_config, train_loop

    catalog = Catalog(root / "catalog")
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    registry = ModelRegistry(root / "models")
    runs = []
    for seed in (0, 1):
        config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                             [f"catalog={catalog.root}", "epochs=1", "optim.max_steps_per_epoch=10",
                              "progress=false", f"seed={seed}"])
        config["run_dir"] = str(root / f"run-{seed}")
        train_loop(config)
        runs.append(root / f"run-{seed}")
    seconds = []
    for i in range(n):
        t0 = time.perf_counter()
        registry.register(runs[i % 2], f"plant-{i:03d}")
        seconds.append(time.perf_counter() - t0)
        if (i + 1) % 25 == 0:
            print(f"registered {i + 1}/{n} ({np.median(seconds):.2f} s each)", flush=True)
    body = json.loads(window_bodies(1)[0])
    local = Predictor(registry)
    expected = {i: local.predict(f"plant-{i:03d}", body["windows"])["predictions"] for i in (0, 1)}
    return registry.root, seconds, expected


def server(models_root: str, port: int, per_replica: int) -> None:
    """The Serve application as ``transferline serve`` runs it (one replica); prints one JSON line
    when it answers, then serves until stdin closes."""
    from ray import serve

    from transferline.serve.app import application
    from transferline.serve.runtime import deploy, start

    start("127.0.0.1", port, num_cpus=2)
    deploy(application(models_root, models_per_replica=per_replica), port=port, name="batched")
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()
    serve.shutdown()


def replica_rss(proc: subprocess.Popen) -> float:
    return tree_rss(proc)["replica"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=200, help="models registered (default 200)")
    parser.add_argument("--models-per-replica", type=int, default=8, help="models a replica keeps loaded (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each load step")
    parser.add_argument("--server", nargs=3, metavar=("MODELS", "PORT", "PER_REPLICA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        server(args.server[0], int(args.server[1]), int(args.server[2]))
        return 0
    started()
    import httpx

    root = Path(tempfile.mkdtemp(prefix="tl-serve-models-"))
    models, register_s, expected = make_models(root, args.models)
    names = [f"plant-{i:03d}" for i in range(args.models)]
    keep = min(args.models_per_replica, args.models)
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--server", str(models), str(port), str(keep)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    if not proc.stdout.readline():
        raise SystemExit(f"the server exited with {proc.wait()}")
    url = f"http://127.0.0.1:{port}"
    body = window_bodies(1)[0]
    wrong = []
    try:
        with httpx.Client(base_url=url, timeout=120, headers={"content-type": "application/json"}) as client:
            rss = {"none_loaded": replica_rss(proc)}
            cold = []
            for i, name in enumerate(names):
                t0 = time.perf_counter()
                reply = client.post(f"/v1/models/{name}/predict", content=body)
                cold.append((time.perf_counter() - t0) * 1000)
                answer = reply.json() if reply.status_code == 200 else {}
                if answer.get("model") != f"{name}@1" or not np.allclose(answer.get("predictions", [np.nan]),
                                                                          expected[i % 2], atol=1e-4):
                    wrong.append(f"{name}: {reply.status_code} {reply.text[:200]}")
                if i == 0:
                    rss["one_loaded"] = replica_rss(proc)
                if i == keep - 1:
                    rss["full"] = replica_rss(proc)
                if (i + 1) % 50 == 0:
                    print(f"cold requests {i + 1}/{len(names)}: median {np.median(cold):.1f} ms", flush=True)
            rss["after_all"] = replica_rss(proc)
            warm = []
            for name in names[-keep:]:  # the ones the replica still holds
                t0 = time.perf_counter()
                reply = client.post(f"/v1/models/{name}/predict", content=body)
                warm.append((time.perf_counter() - t0) * 1000)
                if reply.status_code != 200:
                    wrong.append(f"{name} (warm): {reply.status_code} {reply.text[:200]}")
            t0, listed, page = time.perf_counter(), [], "/v1/models"
            while page:
                reply = client.get(page)
                listed += [m["name"] for m in reply.json()]
                link = reply.headers.get("link")
                page = link.split(">")[0].lstrip("<") if link else None
            list_ms = (time.perf_counter() - t0) * 1000
            if listed != names:
                wrong.append(f"GET /v1/models listed {len(listed)} names, not the {len(names)} registered")
        bodies = window_bodies(32)
        uniform = load(url, [f"/v1/models/{n}/predict" for n in np.random.default_rng(0).permutation(names)],
                       bodies, 8, args.seconds)
        hot_paths = [f"/v1/models/{n}/predict" for n in names[:keep]]
        load(url, hot_paths, bodies, 8, 2.0)  # load the hot set
        hot = load(url, hot_paths, bodies, 8, args.seconds)
        rss["after_load"] = replica_rss(proc)
        processes = tree_rss(proc)
    finally:
        stop_server(proc)

    load_ms = float(np.median(cold) - np.median(warm))
    summary = {
        "models": args.models, "models_per_replica": keep,
        "register_s_per_model": float(np.median(register_s)),
        "cold_request_ms": float(np.median(cold)), "cold_request_ms_p90": float(np.percentile(cold, 90)),
        "warm_request_ms": float(np.median(warm)), "load_ms_per_model": load_ms,
        "replica_rss_mb": rss,
        "rss_mb_per_loaded_model": (rss["full"] - rss["one_loaded"]) / max(1, keep - 1),
        "uniform_req_per_s": uniform["req_per_s"], "uniform_p99_ms": uniform["p99_ms"],
        "hot_req_per_s": hot["req_per_s"], "hot_p99_ms": hot["p99_ms"],
        "errors": len(wrong) + uniform["errors"] + hot["errors"], "list_all_ms": list_ms,
    }
    r = summary["replica_rss_mb"]
    table = ["| step | value |", "|---|---:|",
             f"| models registered | {args.models} (2 runs, cnn_small) |",
             f"| registration, median | {summary['register_s_per_model']:.2f} s |",
             f"| first request to an unloaded model, median (p90) | {summary['cold_request_ms']:.1f} "
             f"({summary['cold_request_ms_p90']:.1f}) ms |",
             f"| request to a loaded model, median | {summary['warm_request_ms']:.1f} ms |",
             f"| load per model (cold - warm) | {load_ms:.1f} ms |",
             f"| replica RSS: none / 1 / {keep} loaded / after all {args.models} / after load | "
             f"{r['none_loaded']:.0f} / {r['one_loaded']:.0f} / {r['full']:.0f} / {r['after_all']:.0f} / "
             f"{r['after_load']:.0f} MB |",
             f"| RSS per loaded model | {summary['rss_mb_per_loaded_model']:.2f} MB |",
             f"| c=8 over all {args.models} models | {uniform['req_per_s']:.1f} req/s, p99 {uniform['p99_ms']:.0f} ms |",
             f"| c=8 over {keep} loaded models | {hot['req_per_s']:.1f} req/s, p99 {hot['p99_ms']:.0f} ms |",
             f"| GET /v1/models, all pages | {list_ms:.0f} ms |",
             f"| errors | {summary['errors']} |"]
    config = {"models": args.models, "models_per_replica": keep, "seconds": args.seconds, "concurrency": 8,
              "encoder": "cnn_small", "replicas": 1, "ray_num_cpus": 2, "windows_per_request": 1,
              "ort_threads": os.environ.get("TRANSFERLINE_ORT_THREADS", "1")}
    write_results("serve_models", config, summary, {"cold_ms": cold, "warm_ms": warm, "register_s": register_s,
                                                    "uniform": uniform, "hot": hot, "processes_rss_mb": processes,
                                                    "wrong": wrong[:20]}, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
