"""Shared pieces of the transfer benchmarks: a cached catalog of the real data, seeded runs."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from _common import spread

from transferline.catalog import Catalog
from transferline.connectors import create_reader
from transferline.train import load_config, prepare_data, train_loop

CONFIGS = Path(__file__).resolve().parent / "configs"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bench_catalog(root: str | Path, data: Path, datasets: dict[str, tuple[str, str]]) -> Catalog:
    """Ingests ``{name: (format, folder under data)}`` into ``root`` (a no-op when already there)."""
    catalog = Catalog(root)
    for name, (fmt, folder) in datasets.items():
        catalog.ingest(name, create_reader(fmt)(data / folder))
    return catalog


def run_once(catalog: Catalog, config_name: str, overrides: list[str], run_dir: str | None = None) -> dict:
    """One run of ``configs/<config_name>`` with ``overrides`` (weights kept in ``run_dir`` if given)."""
    config = load_config(CONFIGS / config_name, [f"catalog={catalog.root}", "progress=false", *overrides])
    if run_dir:
        config["run_dir"] = run_dir
    return train_loop(config, data=prepare_data(config, catalog))


def accuracy_run(catalog_root: str, config_path: Path, overrides: list[str]) -> dict:
    """One run in a benchmark's worker process, with ``$TL_BENCH_THREADS`` torch threads (default 1:
    two runs side by side use the two cores): its test accuracies (``test_*accuracy``) and seconds."""
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("TL_BENCH_THREADS", "1")))
    t0 = time.perf_counter()
    metrics = run_once(Catalog(catalog_root), config_path, overrides)
    keep = {k: float(v) for k, v in metrics.items() if k.startswith("test_") and k.endswith("accuracy")}
    keep["seconds"] = time.perf_counter() - t0
    return keep


def add_common_args(parser, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """--data, --catalog and --seeds, shared by every transfer benchmark."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder")
    parser.add_argument("--catalog", default="/tmp/transferline-bench", help="catalog cache for the benchmarks")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))


def run_seeds(catalog: Catalog, config_name: str, overrides: list[str], seeds: list[int], *,
              predictions: bool = False) -> list[dict]:
    """One run per seed; windows are prepared once per seed and shared by nothing else. Each run's
    metrics with its ``seed`` and ``seconds``, and with ``predictions`` its test set's ``predicted``
    and ``target`` in the task's units (from the run's ``evaluation.npz``)."""
    import tempfile

    import numpy as np

    out = []
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            run_dir = Path(tmp) / str(seed) if predictions else None
            metrics = run_once(catalog, config_name, [f"seed={seed}", *overrides], run_dir=run_dir and str(run_dir))
            if predictions:
                with np.load(run_dir / "evaluation.npz") as saved:
                    metrics.update(predicted=saved["test_predicted"].reshape(len(saved["test_target"]), -1)[:, 0],
                                   target=saved["test_target"])
            out.append({**metrics, "seed": seed, "seconds": time.perf_counter() - t0})
    return out


def seed_values(results: dict, cell: tuple, model: str, seeds: list[int], key: str = "test_accuracy") -> list[float]:
    """``results[(*cell, model, seed)][key]`` for each seed (``run_jobs``' results)."""
    return [results[(*cell, model, s)][key] for s in seeds]


def mean_of_medians(results: dict, cells: list[tuple], model: str, seeds: list[int],
                    key: str = "test_accuracy") -> dict:
    """Mean over ``cells`` (e.g. load pairs) of the median over seeds; spread: each seed's mean over the cells."""
    per_seed = [statistics.fmean(results[(*c, model, s)][key] for c in cells) for s in seeds]
    return {"mean_of_medians": statistics.fmean(statistics.median(seed_values(results, c, model, seeds, key))
                                                for c in cells),
            "per_seed": spread(per_seed)}


def method_overrides(spec: str) -> list[str]:
    """``"dann:weight=0.1,ramp=false"`` → ``["adaptation=dann", "adaptation.options.weight=0.1", ...]``."""
    name, _, options = spec.partition(":")
    return [f"adaptation={name}", *[f"adaptation.options.{kv}" for kv in options.split(",") if kv]]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *["| " + " | ".join(row) + " |" for row in rows]])


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def stats(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "median": statistics.median(values), "values": values}


def run_jobs(run_job, jobs: list[tuple], n_jobs: int, key: int, describe) -> dict[tuple, dict]:
    """``run_job`` over ``jobs`` in ``n_jobs`` spawned processes: ``{job[:key]: metrics}``, printing
    progress with ``describe(job)`` and each run's test accuracy as results arrive (in job order)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    results: dict[tuple, dict] = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn")) as pool:
        for i, (job, metrics) in enumerate(pool.map(run_job, jobs), start=1):
            results[job[:key]] = metrics
            print(f"[{i}/{len(jobs)} {(time.perf_counter() - t0) / 60:5.1f} min] {describe(job)}: "
                  f"acc {metrics['test_accuracy']:.4f}", flush=True)
    return results
