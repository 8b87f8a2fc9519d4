"""Streaming training on a catalog dataset larger than a Ray worker may hold.

Writes ``benchmarks/results/stream_memory.json`` and ``.md``; with ``--report PATH`` writes the
raw report there instead (``tests/train/test_bounded_memory.py`` runs it so). Usage:
``python benchmarks/stream_memory.py [--rows 14000000] [--budget-mb 640]``.

Every Ray worker process of the job imports its heavy modules first and then limits its private
writable memory (``RLIMIT_DATA``) to what it holds at that point plus ``--budget-mb``. The script

1. writes a synthetic ``runs`` dataset whose feature values alone exceed that budget several times;
2. checks the limit bites: a Ray task that loads the dataset's windows in memory must fail;
3. trains one epoch over every window with ``data.streaming.enabled`` under Ray Train, sampling
   the resident memory of the training worker meanwhile;

and records what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402

FEATURES = [f"f{i}" for i in range(16)]
ASSET_ROWS = 2048


def limit_memory() -> None:
    """Ray worker setup hook: imports what a worker will use, then caps further private memory."""
    import pyarrow.dataset  # noqa: F401
    import ray.data  # noqa: F401
    import ray.train.torch  # noqa: F401
    import torch  # noqa: F401

    import transferline.train  # noqa: F401

    held = _vm_data()
    limit = held + int(os.environ["BOUNDED_MEMORY_BUDGET_MB"]) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    # NOTE: written whole, then renamed: the driver's sampler reads these files while workers start
    final = Path(os.environ["BOUNDED_MEMORY_LOG"], str(os.getpid()))
    final.with_suffix(".tmp").write_text(str(held))
    os.replace(final.with_suffix(".tmp"), final)


def _vm_data() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


def write_dataset(catalog, name: str, rows: int, parts: int) -> dict:
    """``rows`` rows of ``ASSET_ROWS``-step runs over 4 plants, in ``parts`` ingest parts."""
    import pyarrow as pa

    from transferline.catalog import IngestPlan, Part

    per_part = rows // parts
    arrow_bytes = []  # of each part as generated: the rows' size in memory

    def load(i: int):
        def make():
            rng = np.random.default_rng(i)
            n = per_part
            asset = np.arange(i * n, (i + 1) * n) // ASSET_ROWS
            step = np.arange(i * n, (i + 1) * n) % ASSET_ROWS + 1
            cols = {"split": pa.array(["train"] * n), "plant": pa.array(np.array(["p0", "p1", "p2", "p3"])[asset % 4]),
                    "asset": pa.array([f"a{a}" for a in asset]), "step": pa.array(step.astype(np.int64)),
                    "setting_1": pa.array(rng.choice([0.0, 10.0, 20.0], n)),
                    "rul": pa.array((ASSET_ROWS - step).astype(np.float32))}
            wear = (step / ASSET_ROWS).astype(np.float32)
            for j, f in enumerate(FEATURES):
                cols[f] = pa.array(rng.normal(0, 1, n).astype(np.float32) + (j % 3) * wear)
            table = pa.table(cols)
            arrow_bytes.append(table.nbytes)
            return table
        return make

    plan = IngestPlan("runs", "synthetic", "memory", [Part(f"part-{i}", f"{rows}-{i}", f"part-{i}", load(i))
                                                        for i in range(parts)])
    catalog.ingest(name, plan)
    return {"rows": rows, "assets": rows // ASSET_ROWS, "feature_bytes": rows * len(FEATURES) * 4,
            "arrow_bytes": sum(arrow_bytes), "parquet_bytes": sum(f.stat().st_size for f in catalog.files(name))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", help="where to write the dataset (default: a temporary folder)")
    parser.add_argument("--rows", type=int, default=14_000_000)
    parser.add_argument("--budget-mb", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shuffle-windows", type=int, default=1024)
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (repeatable; the test trains a narrower encoder)")
    parser.add_argument("--report", help="write the raw report here instead of benchmarks/results")
    args = parser.parse_args()
    started()
    args.catalog = args.catalog or tempfile.mkdtemp(prefix="tl-stream-memory-")

    import psutil
    import ray

    from transferline.catalog import Catalog
    from transferline.data import get_window_spec, load_windows
    from transferline.train import fit_on_ray, load_config

    catalog = Catalog(args.catalog)
    report: dict = {"budget_bytes": args.budget_mb * 2**20}
    report["dataset"] = write_dataset(catalog, "big", args.rows, parts=max(1, args.rows // 1_000_000))
    log = Path(tempfile.mkdtemp(prefix="tl-baselines-"))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(address="local", num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
             log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1",
             runtime_env={"worker_process_setup_hook": limit_memory,
                          "env_vars": {"BOUNDED_MEMORY_BUDGET_MB": str(args.budget_mb), "BOUNDED_MEMORY_LOG": str(log),
                                       # NOTE: two malloc arenas instead of one per thread
                                       "MALLOC_ARENA_MAX": "2"}})
    options = ["catalog=" + str(catalog.root), "data.dataset=big", "data.spec=cmapss",
               "data.source.domains=[p0, p1, p2, p3]", "data.target.domains=null", "data.streaming.enabled=true",
               f"data.spec_options={{features: {json.dumps(FEATURES)}, length: 32, stride: 32, "
               f"label_cap: {ASSET_ROWS}}}",
               "encoder=cnn_small", "task=rul", "adaptation=source_only", "strategy=full", "epochs=1",
               f"optim.batch_size={args.batch_size}",
               f"data.streaming.shuffle_windows={args.shuffle_windows}", "optim.lr=0.003", "progress=false", "device=cpu",
               *args.extra]

    @ray.remote(num_cpus=1)
    def load_in_memory() -> int:
        spec = get_window_spec("cmapss", features=tuple(FEATURES), length=32, stride=32)
        return len(load_windows(Catalog(args.catalog), "big", spec))

    t0 = time.perf_counter()
    try:
        ray.get(load_in_memory.remote())
        report["in_memory_load"] = "succeeded"
    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is reported
        report["in_memory_load"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[-1][:300]}"
    report["in_memory_load_seconds"] = time.perf_counter() - t0
    report["label_std"] = float(np.std(np.arange(ASSET_ROWS)))

    peak: dict[str, int] = {}  # per worker process: most private data above its limited baseline, and RSS
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for proc in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                base = log / str(proc.info["pid"])
                mem = proc.info["memory_info"]
                if mem is None or not base.exists():
                    continue
                role = "train_worker" if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []) else "other_worker"
                peak[f"{role}_data_growth"] = max(peak.get(f"{role}_data_growth", 0), mem.data - int(base.read_text()))
                peak[f"{role}_rss"] = max(peak.get(f"{role}_rss", 0), mem.rss)
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    config = load_config(None, options)
    metrics = fit_on_ray(config, workers=1, cpus_per_worker=1)
    stop.set()
    sampler.join()
    report.update(train_seconds=time.perf_counter() - t0, metrics=metrics, peak=peak,
                  driver_max_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    ray.shutdown()
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, default=float))
        return
    mb = 2**20
    data = report["dataset"]
    windows = data["rows"] // 32
    summary = {"budget_mb": args.budget_mb, "dataset_arrow_mb": data["arrow_bytes"] / mb,
               "dataset_parquet_mb": data["parquet_bytes"] / mb,
               "dataset_to_budget": data["arrow_bytes"] / report["budget_bytes"],
               "in_memory_load_under_budget": report["in_memory_load"],
               "streamed_epoch_completed": metrics.get("epochs_run") == 1,
               "train_worker_private_growth_mb": peak.get("train_worker_data_growth", 0) / mb,
               "train_worker_peak_rss_mb": peak.get("train_worker_rss", 0) / mb,
               "train_s": report["train_seconds"], "windows_per_s": windows / metrics["wall_seconds"],
               "val_rmse": metrics["selection_value"], "label_std": report["label_std"]}
    table = "\n".join([
        "| measure | value |", "|---|---:|",
        f"| dataset rows / windows | {data['rows']:,} / {windows:,} |",
        f"| dataset in memory (Arrow) / Parquet | {summary['dataset_arrow_mb']:,.0f} MB / "
        f"{summary['dataset_parquet_mb']:,.0f} MB |",
        f"| private-memory budget per Ray worker | {args.budget_mb} MB ({summary['dataset_to_budget']:.1f}x smaller) |",
        f"| load windows in memory under the budget | {report['in_memory_load'][:60]} |",
        f"| streamed epoch, 1 worker | {'completed' if summary['streamed_epoch_completed'] else 'FAILED'} in "
        f"{metrics['wall_seconds']:.0f} s ({summary['windows_per_s']:,.0f} windows/s) |",
        f"| training worker's private memory growth (peak) | {summary['train_worker_private_growth_mb']:.0f} MB |",
        f"| validation RMSE (label std {report['label_std']:.0f}) | {summary['val_rmse']:.1f} |"])
    write_results("stream_memory", {"rows": args.rows, "budget_mb": args.budget_mb, "encoder": "cnn_small", "overrides": args.extra,
                                    "batch_size": args.batch_size, "shuffle_windows": args.shuffle_windows,
                                    "window": "32 rows, stride 32, 16 channels"},
                  summary, report, table)


if __name__ == "__main__":
    main()
