"""Serving load test over real HTTP on loopback: transferline's Ray Serve path against a plain
single-process FastAPI + ONNX Runtime server, same models, same run.

Models (short real training runs on the vendored samples, registered as the platform registers
any run, so each is served from its ONNX export):
  small      two 1D-CNN RUL models (C-MAPSS, ``cnn_small``), requests alternate between them
  inception  an InceptionTime RUL model (``tsai/inception_time``), the heavier series model
  image      an EfficientNet-Lite0 NEU defect classifier at 128 px (ImageNet init, offline weights)
Requests carry one 30x14 window (JSON numbers, or ``windows_base64``) or one real NEU JPEG.

Servers, each in its own process tree, one after the other:
  plain       uvicorn + FastAPI around transferline's Predictor (the same validation and
              onnxruntime session), one process, no Ray
  throughput  ``transferline serve``'s Ray Serve application, with Serve's throughput-optimized
              request path (``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``, transferline's default: gRPC
              between proxy and replica, user code on the replica's event loop), through the
              proxy and through the replica's direct-ingress port
  haproxy     the same with ``transferline serve --haproxy``: Serve's HAProxy on the port, spreading
              requests over the replicas' own ports
  haproxy-2   the same with two replicas (``--replicas 2``; the batched application only)
  ray-default the same application on Ray's default request path, through the proxy
Each Serve server holds two applications (``/b``: per-model batching, ``/u``: none).

The load generator is a separate process (aiohttp, ``benchmarks/_loadgen.py``), bounded by
``--seconds`` per step. RSS of every process of each server (Ray's GCS, raylet, controller, proxy
and replicas included) is read with psutil after its load.

Writes ``benchmarks/results/serve_load.json`` and ``.md``. ``summary`` keys (issue 18): errors,
serve_vs_plain_c32, p99_ms_c32, p99_ms_c64, batching_speedup_c32 (per model), cold_start_s,
replica_rss_mb, proxy_rss_mb, controller_rss_mb. Usage: ``python benchmarks/serve_load.py``.
"""

# NOTE: no `from __future__ import annotations`: the baseline's FastAPI route needs real annotations.
import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOADGEN = Path(__file__).resolve().parent / "_loadgen.py"
CONCURRENCY = (1, 8, 32, 64)
TARGETS = {"errors": 0, "serve_vs_plain_c32": 0.6, "p99_ms_c32": 150.0, "p99_ms_c64": 500.0,
           "batching_speedup_c32": {"small": 1.0, "image": 2.0}, "cold_start_s": 2.0, "replica_rss_mb": 400.0}
MODES = {"ray-default": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}, "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
         "haproxy": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},
         "haproxy-2": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1", "TL_BENCH_REPLICAS": "2"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# models and request bodies


def make_models(root: Path) -> Path:
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.model_registry import ModelRegistry
    from transferline.sample_data import sample_path
    from transferline.train import load_config, train_loop

    catalog = Catalog(root / "catalog")
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    catalog.ingest("neu", create_reader("neu-det")(sample_path("neu")))
    registry = ModelRegistry(root / "models")
    runs = {"plant-a": ("demo_transfer.yaml", ["seed=0"]), "plant-b": ("demo_transfer.yaml", ["seed=1"]),
            "inception": ("demo_transfer.yaml", ["seed=0", "encoder.name=inception_time"]),
            "image": ("neu_fewshot.yaml", ["epochs=1"])}
    for name, (file, overrides) in runs.items():
        config = load_config(REPO / "examples" / "configs" / file,
                             [f"catalog={catalog.root}", "epochs=1", "optim.max_steps_per_epoch=10", "progress=false",
                              *overrides])
        config["run_dir"] = str(root / f"run-{name}")
        train_loop(config)
        entry = registry.register(root / f"run-{name}", name)
        print(f"registered {entry.ref}: runtime {entry.runtime}", flush=True)
    return registry.root


def batch_policies(models: Path) -> dict:
    """What the server's batching rule decides for each model on this machine (as a replica does at load)."""
    from transferline.model_registry import ModelRegistry
    from transferline.serve.batching import measure
    from transferline.serve.predictor import load_model

    registry = ModelRegistry(models)
    out = {name: measure(load_model(registry, name).module).to_dict() for name in ("plant-a", "inception", "image")}
    for name, policy in out.items():
        print(f"batching {name}: {policy}", flush=True)
    return out


def window_bodies(n: int = 32, binary: bool = False) -> list[str]:
    typical = np.array([642.5, 1590.0, 1409.0, 553.4, 2388.1, 9065.0, 47.5, 521.4, 2388.1, 8143.0, 8.44, 393.0,
                        38.8, 23.3])
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        x = typical * (1 + 0.001 * rng.standard_normal((1, 30, 14)))
        if binary:
            out.append(json.dumps({"windows_base64": base64.b64encode(x.astype("<f4").tobytes()).decode()}))
        else:
            out.append(json.dumps({"windows": x.tolist()}))
    return out


def image_bodies(n: int = 16) -> list[str]:
    from transferline.sample_data import sample_path

    files = sorted((sample_path("neu") / "IMAGES").glob("*.jpg"))[::7][:n]
    return [json.dumps({"images": [base64.b64encode(f.read_bytes()).decode()]}) for f in files]


# ---------------------------------------------------------------------------------------------
# servers (each runs in its own process: ``serve_load.py --server KIND MODELS PORT``)


def plain_server(models_root: str, port: int) -> None:
    """The baseline: one uvicorn process, FastAPI, the same Predictor and onnxruntime sessions."""
    import orjson
    import uvicorn
    from fastapi import FastAPI, HTTPException, Request, Response

    from transferline.serve import Predictor, RequestError

    app = FastAPI()
    predictor = Predictor(models_root)

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        try:
            answer = predictor.predict_body(name, await request.body())
        except RequestError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_server(models_root: str, port: int) -> None:
    """transferline's Serve path (the mode comes in the environment): a batched application at /b
    and an unbatched one at /u. Prints one JSON line when ready, then serves until stdin closes."""
    import httpx
    from ray import serve

    from transferline.serve.app import application
    from transferline.serve.runtime import deploy, start

    replicas = int(os.environ.get("TL_BENCH_REPLICAS", "1"))
    t0 = time.perf_counter()
    start("127.0.0.1", port, num_cpus=2)
    ray_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    deploy(application(models_root, batching=True, replicas=replicas), port=port, name="batched", route_prefix="/b")
    first = httpx.post(f"http://127.0.0.1:{port}/b/v1/models/plant-a/predict",
                       content=window_bodies(1)[0], headers={"content-type": "application/json"}, timeout=120)
    cold_start = time.perf_counter() - t0
    if first.status_code != 200:
        raise SystemExit(f"first answer: {first.status_code} {first.text[:400]}")
    if replicas == 1:  # (each replica takes a CPU of the two)
        deploy(application(models_root, batching=False), port=port, name="unbatched", route_prefix="/u")
    print(json.dumps({"ready": True, "ray_start_s": ray_start, "cold_start_s": cold_start}), flush=True)
    sys.stdin.read()
    serve.shutdown()


def start_server(kind: str, models: Path, env: dict) -> tuple[subprocess.Popen, int, dict]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--server", kind, str(models), str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    if kind == "plain":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc, port, {}
            time.sleep(0.1)
        raise RuntimeError("plain server did not start")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{kind} server exited with {proc.wait()}")
    return proc, port, json.loads(line)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_rss(proc: subprocess.Popen) -> dict[str, float]:
    """MB resident per process of the server's tree, keyed by what the process is."""
    import psutil

    root = psutil.Process(proc.pid)
    out: dict[str, float] = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            cmd = " ".join(p.cmdline())
            rss = p.memory_info().rss / 2**20
        except psutil.Error:
            continue
        for key, label in (("ServeReplica:batched", "replica"), ("ServeReplica:unbatched", "replica_unbatched"),
                           ("ProxyActor", "proxy"), ("ServeController", "controller"), ("gcs_server", "gcs"),
                           ("raylet", "raylet"), ("HAProxyManager", "haproxy_manager"), ("bin/haproxy", "haproxy")):
            if key in cmd:
                break
        else:
            label = "driver" if p.pid == root.pid else "other"
        if label.startswith("replica") and label in out:  # one entry per replica process
            label = f"{label}#{sum(k == label or k.startswith(label + '#') for k in out) + 1}"
        out[label] = out.get(label, 0.0) + rss
    return {k: round(v, 1) for k, v in sorted(out.items())}


def direct_port(proc: subprocess.Popen) -> int | None:
    """The HTTP port the batched application's replica listens on itself (direct ingress), if any."""
    import psutil

    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if "ServeReplica:batched" not in " ".join(p.cmdline()):
                continue
            ports = sorted(c.laddr.port for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN)
        except psutil.Error:
            continue
        http = [q for q in ports if 30000 <= q < 31000]
        if http:
            return http[0]
    return None


# ---------------------------------------------------------------------------------------------
# load


def load(url: str, paths: list[str], bodies: list[str], concurrency: int, seconds: float) -> dict:
    spec = {"url": url, "paths": paths, "bodies": bodies, "concurrency": concurrency, "seconds": seconds,
            "check": '"model"', "timeout_s": 60}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        done = subprocess.run([sys.executable, str(LOADGEN), f.name], capture_output=True, text=True,
                              timeout=seconds + 120)
    finally:
        os.unlink(f.name)
    if done.returncode:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def steps(prefix: str, batched: bool, unbatched: bool = True) -> list[tuple]:
    """(model, body form, application prefix, concurrency) of one server's load steps."""
    app_b, app_u = f"{prefix}/b" if batched else prefix, f"{prefix}/u" if batched else prefix
    out = [("small", "json", app_b, c) for c in CONCURRENCY]
    out += [("small", "base64", app_b, 32), ("inception", "json", app_b, 32), ("image", "jpeg", app_b, 32)]
    if batched and unbatched:
        out += [("small", "json", app_u, 32), ("inception", "json", app_u, 32), ("image", "jpeg", app_u, 32)]
    return out


BODIES: dict = {}


def bodies_for(model: str, form: str) -> tuple[list[str], list[str]]:
    if (model, form) not in BODIES:
        if model == "image":
            BODIES[model, form] = (["/v1/models/image/predict"], image_bodies())
        else:
            names = ["plant-a", "plant-b"] if model == "small" else [model]
            BODIES[model, form] = ([f"/v1/models/{n}/predict" for n in names], window_bodies(binary=form == "base64"))
    return BODIES[model, form]


def sweep(server: str, url: str, plan: list[tuple], seconds: float) -> list[dict]:
    out = []
    for model, form, prefix, c in plan:
        paths, bodies = bodies_for(model, form)
        paths = [prefix.rstrip("/") + p for p in paths]
        load(url, paths, bodies, 8, min(2.0, seconds))  # warm: load the models, fill the caches
        r = load(url, paths, bodies, c, seconds)
        app = "unbatched" if prefix.endswith("/u") else "batched" if prefix.endswith("/b") else "plain"
        row = {"server": server, "app": app, "model": model, "body": form, **r}
        print(f"{server:16s} {app:9s} {model:9s} {form:6s} c={c:3d}: {r['req_per_s']:7.1f} req/s  "
              f"p50 {r['p50_ms']:7.1f}  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}", flush=True)
        out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of load per step")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--server", nargs=3, metavar=("KIND", "MODELS", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        kind, models, port = args.server
        (plain_server if kind == "plain" else serve_server)(models, int(port))
        return 0
    started()
    root = Path(tempfile.mkdtemp(prefix="tl-serve-bench-"))
    models = make_models(root)
    policies = batch_policies(models)

    results, servers = [], {}
    proc, port, _ = start_server("plain", models, {})
    try:
        results += sweep("plain", f"http://127.0.0.1:{port}", steps("", batched=False), args.seconds)
        servers["plain"] = {"rss_mb": tree_rss(proc)}
    finally:
        stop_server(proc)
    for mode in args.modes:
        proc, port, info = start_server("serve", models, MODES[mode])
        try:
            url = f"http://127.0.0.1:{port}"
            one = MODES[mode].get("TL_BENCH_REPLICAS", "1") == "1"
            results += sweep(mode, url, steps("", batched=True, unbatched=one), args.seconds)
            direct = direct_port(proc)
            if direct and mode == "throughput":
                results += sweep(f"{mode}/direct", f"http://127.0.0.1:{direct}",
                                 [s for s in steps("", batched=True) if not s[2].endswith("/u")], args.seconds)
            servers[mode] = {**info, "direct_port": direct, "rss_mb": tree_rss(proc)}
        finally:
            stop_server(proc)

    def find(server, model="small", c=32, app="batched", body=None):
        body = body or ("jpeg" if model == "image" else "json")
        app = "plain" if server == "plain" else app
        rows = [r for r in results if r["server"] == server and r["model"] == model and r["concurrency"] == c
                and r["app"] == app and r["body"] == body]
        return rows[0] if rows else None

    plain = find("plain")["req_per_s"]
    # the summary's Serve path: the fastest with one replica, as the plain server has one process
    best = max((r["server"] for r in results if r["server"] not in ("plain", "haproxy-2") and find(r["server"])),
               key=lambda s: find(s)["req_per_s"])
    mode = best.split("/")[0]  # batching is compared on that mode's main port (both applications)
    rss = servers[mode]["rss_mb"]
    summary = {
        "errors": sum(r["errors"] for r in results),
        "serve_path": best,
        "serve_vs_plain_c32": find(best)["req_per_s"] / plain,
        "serve_vs_plain_c32_per_path": {s: find(s)["req_per_s"] / plain
                                        for s in dict.fromkeys(r["server"] for r in results) if s != "plain"},
        "serve_2_replicas_vs_plain_c32": find("haproxy-2")["req_per_s"] / plain if find("haproxy-2") else None,
        "p99_ms_c32": find(best)["p99_ms"], "p99_ms_c64": find(best, c=64)["p99_ms"],
        "batching_speedup_c32": {m: find(mode, m)["req_per_s"] / find(mode, m, app="unbatched")
                                 ["req_per_s"] for m in ("small", "inception", "image")},
        "base64_vs_json_c32": find(best, body="base64")["req_per_s"] / find(best)["req_per_s"],
        "cold_start_s": servers[mode]["cold_start_s"],
        "replica_rss_mb": rss.get("replica"),
        "replica_rss_mb_per_mode": {m: info["rss_mb"].get("replica") for m, info in servers.items() if m != "plain"},
        "proxy_rss_mb": rss.get("proxy"), "haproxy_rss_mb": rss.get("haproxy"),
        "controller_rss_mb": rss.get("controller"), "server_total_rss_mb": round(sum(rss.values()), 1),
        "plain_rss_mb": servers["plain"]["rss_mb"].get("driver"),
        "targets": TARGETS,
    }
    table = ["| server | app | model | body | concurrency | req/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    table += [f"| {r['server']} | {r['app']} | {r['model']} | {r['body']} | {r['concurrency']} | "
              f"{r['req_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |" for r in results]
    table += ["", "| server | process | RSS MB |", "|---|---|---:|"]
    table += [f"| {s} | {k} | {v:.0f} |" for s, info in servers.items() for k, v in info["rss_mb"].items()]
    b = summary["batching_speedup_c32"]
    table += ["", f"best Serve path {best}: {summary['serve_vs_plain_c32']:.2f}x plain FastAPI + ONNX Runtime at c=32 "
                  f"(target 0.6); p99 {summary['p99_ms_c32']:.0f} ms at c=32 (target 150), "
                  f"{summary['p99_ms_c64']:.0f} ms at c=64 (target 500); batching at c=32: small {b['small']:.2f}x "
                  f"(target 1.0), inception {b['inception']:.2f}x, image {b['image']:.2f}x (target 2.0); cold start "
                  f"{summary['cold_start_s']:.2f} s (target 2); replica RSS {summary['replica_rss_mb']} MB (target "
                  f"400), proxy {summary['proxy_rss_mb']} MB, controller {summary['controller_rss_mb']} MB; errors "
                  f"{summary['errors']}"]
    config = {"seconds": args.seconds, "concurrency": CONCURRENCY, "windows_per_request": 1, "images_per_request": 1,
              "image_size": [128, 128], "models": ["plant-a", "plant-b", "inception", "image"],
              "modes": {m: MODES[m] for m in args.modes}, "ray_num_cpus": 2,
              "ort_threads": os.environ.get("TRANSFERLINE_ORT_THREADS", "1"), "servers": servers,
              "batch_policies": policies}
    write_results("serve_load", config, summary, {"runs": results}, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
