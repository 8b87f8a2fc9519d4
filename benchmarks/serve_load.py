"""Serving load test over real HTTP on loopback.

Two registered models (short real transfer runs on the vendored C-MAPSS sample); clients send one
30x14 window per request, alternating models, at concurrency 1, 8, 32 and 64 for ``--seconds``
each. Three servers, in the same run: the Ray Serve application with batching, the same without
batching, and a plain single-process FastAPI app (uvicorn) around the same predictor.

Writes ``benchmarks/results/serve_load.json`` and ``.md``. ``summary``: errors, batching_speedup_c32
(req/s batched / unbatched at concurrency 32), cold_start_s (Serve application start to first
answer), replica_rss_mb. Usage: ``python benchmarks/serve_load.py [--seconds 10]``.
"""


# NOTE: no `from __future__ import annotations`: the baseline's FastAPI route needs real annotations.
import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32, 64)
TARGETS = {"errors": 0, "batching_speedup_c32": 3.0, "cold_start_s": 2.0, "replica_rss_mb": 500.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_models(root: Path) -> Path:
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.model_registry import ModelRegistry
    from transferline.sample_data import sample_path
    from transferline.train import load_config, train_loop

    catalog = Catalog(root / "catalog")
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    registry = ModelRegistry(root / "models")
    for seed, name in ((0, "plant-a"), (1, "plant-b")):
        config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                             [f"catalog={catalog.root}", "epochs=1", "optim.max_steps_per_epoch=20", "progress=false",
                              f"seed={seed}"])
        config["run_dir"] = str(root / f"run-{name}")
        train_loop(config)
        registry.register(root / f"run-{name}", name)
    return registry.root


def payloads(n: int = 64) -> list[dict]:
    typical = np.array([642.5, 1590.0, 1409.0, 553.4, 2388.1, 9065.0, 47.5, 521.4, 2388.1, 8143.0, 8.44, 393.0,
                        38.8, 23.3])
    rng = np.random.default_rng(0)
    return [{"windows": (typical * (1 + 0.001 * rng.standard_normal((1, 30, 14)))).tolist()} for _ in range(n)]


async def load(url: str, concurrency: int, seconds: float, bodies: list[dict]) -> dict:
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def worker(k: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            name = "plant-a" if i % 2 else "plant-b"
            t0 = time.perf_counter()
            try:
                reply = await client.post(f"{url}/v1/models/{name}/predict", json=bodies[i % len(bodies)])
                ok = reply.status_code == 200 and reply.json()["model"] == f"{name}@1"
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok
            i += concurrency

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, client) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(lat), "errors": errors, "req_per_s": len(lat) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def sweep(url: str, seconds: float, label: str) -> list[dict]:
    bodies = payloads()
    asyncio.run(load(url, 8, 1.0, bodies))  # warm-up: load both models
    out = []
    for c in CONCURRENCY:
        r = {"server": label, **asyncio.run(load(url, c, seconds, bodies))}
        print(f"{label:12s} c={c:3d}: {r['req_per_s']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
              f"  errors {r['errors']}", flush=True)
        out.append(r)
    return out


def replica_rss_mb() -> float:
    """Resident memory of the model-server replica process(es) (Ray titles them ServeReplica:...)."""
    import psutil

    rss = [p.info["memory_info"].rss for p in psutil.process_iter(["cmdline", "memory_info"])
           if "ModelServer" in " ".join(p.info["cmdline"] or [])]
    if not rss:
        raise RuntimeError("no ModelServer replica process found")
    return max(rss) / 2**20


def plain_server(models_root: str, port: int) -> None:
    """The baseline: one uvicorn process, the same predictor, no Ray."""
    import uvicorn
    from fastapi import FastAPI, HTTPException

    from transferline.serve import Predictor, RequestError
    from transferline.serve.app import PredictRequest

    app = FastAPI()
    predictor = Predictor(models_root)

    @app.post("/v1/models/{name}/predict")
    def predict(name: str, body: PredictRequest) -> dict:
        try:
            return predictor.predict(name, body.windows, signals=body.signals, groups=body.groups)
        except RequestError as exc:
            raise HTTPException(422, detail=str(exc)) from None

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--plain-server", nargs=2, metavar=("MODELS", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        plain_server(args.plain_server[0], int(args.plain_server[1]))
        return 0
    started()
    root = Path(tempfile.mkdtemp(prefix="tl-serve-bench-"))
    models = make_models(root)

    from ray import serve

    from transferline.serve.app import application
    from transferline.serve.runtime import start

    port = free_port()
    start("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    serve.run(application(str(models)), name="transferline", route_prefix="/")
    first = httpx.post(f"{url}/v1/models/plant-a/predict", json=payloads(1)[0], timeout=60)
    cold_start = time.perf_counter() - t0
    assert first.status_code == 200, first.text
    results = sweep(url, args.seconds, "serve+batch")
    rss = replica_rss_mb()
    serve.run(application(str(models), batching=False), name="transferline", route_prefix="/")
    results += sweep(url, args.seconds, "serve")
    serve.shutdown()

    plain_port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--plain-server", str(models), str(plain_port)])
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", plain_port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        results += sweep(f"http://127.0.0.1:{plain_port}", args.seconds, "fastapi")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    rate = {(r["server"], r["concurrency"]): r["req_per_s"] for r in results}
    summary = {"errors": sum(r["errors"] for r in results),
               "batching_speedup_c32": rate[("serve+batch", 32)] / rate[("serve", 32)],
               "serve_vs_fastapi_c32": rate[("serve+batch", 32)] / rate[("fastapi", 32)],
               "cold_start_s": cold_start, "replica_rss_mb": rss, "targets": TARGETS}
    table = ["| server | concurrency | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {r['server']} | {r['concurrency']} | {r['req_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['errors']} |" for r in results]
    table += ["", f"batching speedup at c=32: {summary['batching_speedup_c32']:.2f}x; Serve+batching vs plain FastAPI "
                  f"at c=32: {summary['serve_vs_fastapi_c32']:.2f}x; cold start {cold_start:.2f} s; replica RSS "
                  f"{rss:.0f} MB"]
    config = {"seconds": args.seconds, "concurrency": CONCURRENCY, "windows_per_request": 1, "models": 2,
              "max_batch_size": 64, "batch_wait_s": 0.005, "replicas": 1}
    write_results("serve_load", config, summary, {"runs": results}, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
