"""The same transfer job in-process and under Ray Train (1 and 2 workers), on the vendored sample.

``summary.ray_1worker_overhead`` = Ray Train 1-worker wall time / in-process wall time (same job,
same CPUs: the worker gets all of them); ``summary.scaling_efficiency_2workers`` = (2 workers'
windows/s) / (2 x 1 worker's windows/s), each of the two workers with half the CPUs. Wall times
include the worker group's start, not the Ray cluster's (reported separately).

Writes ``benchmarks/results/train_scaling.json`` and ``.md``. Usage:
``python benchmarks/train_scaling.py [--steps 150] [--epochs 4]``.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    started()
    import ray
    import torch

    from transferline._ray import ensure_ray
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path
    from transferline.train import fit_on_ray, load_config, train_loop

    root = Path(tempfile.mkdtemp(prefix="tl-scaling-"))
    catalog = Catalog(root / "catalog")
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         [f"catalog={catalog.root}", f"epochs={args.epochs}", f"optim.max_steps_per_epoch={args.steps}",
                          "progress=false", "early_stopping.patience=100", "target.labelled_units=0", "strategy=full"])
    cpus = os.cpu_count()
    batch = config["optim"]["batch_size"]

    t0 = time.perf_counter()
    local = train_loop(dict(config))
    t_local = time.perf_counter() - t0
    print(f"in-process ({torch.get_num_threads()} threads): {t_local:.1f} s, test RMSE {local['test_rmse']:.2f}",
          flush=True)

    t0 = time.perf_counter()
    ensure_ray()
    t_cluster = time.perf_counter() - t0
    runs = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        metrics = fit_on_ray(dict(config), workers=workers, cpus_per_worker=cpus / workers)
        wall = time.perf_counter() - t0
        windows = workers * args.epochs * args.steps * batch
        runs[workers] = {"wall_s": wall, "windows_per_s": windows / wall, "test_rmse": metrics["test_rmse"],
                         "cpus_per_worker": cpus / workers}
        print(f"Ray Train, {workers} worker(s) x {cpus / workers:g} CPU: {wall:.1f} s, {windows / wall:,.0f} windows/s, "
              f"test RMSE {metrics['test_rmse']:.2f}", flush=True)
    ray.shutdown()
    summary = {"ray_1worker_overhead": runs[1]["wall_s"] / t_local,
               "scaling_efficiency_2workers": runs[2]["windows_per_s"] / (2 * runs[1]["windows_per_s"]),
               "in_process_s": t_local, "ray_cluster_start_s": t_cluster, "target_overhead": TARGET,
               "test_rmse": {"in_process": local["test_rmse"], "ray_1": runs[1]["test_rmse"],
                             "ray_2": runs[2]["test_rmse"]}}
    table = ["| run | wall s | windows/s | test RMSE |", "|---|---:|---:|---:|",
             f"| in-process ({torch.get_num_threads()} threads) | {t_local:.1f} | "
             f"{args.epochs * args.steps * batch / t_local:,.0f} | {local['test_rmse']:.2f} |"]
    table += [f"| Ray Train {w} worker(s) x {r['cpus_per_worker']:g} CPU | {r['wall_s']:.1f} | {r['windows_per_s']:,.0f} | "
              f"{r['test_rmse']:.2f} |" for w, r in runs.items()]
    table += ["", f"Ray 1-worker overhead {summary['ray_1worker_overhead']:.2f}x (target <= {TARGET}); 2-worker scaling "
                  f"efficiency {summary['scaling_efficiency_2workers']:.2f}; Ray cluster start {t_cluster:.1f} s"]
    config_out = {"epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": batch, "encoder": "cnn_small",
                  "adaptation": config["adaptation"]["name"], "cpus": cpus}
    write_results("train_scaling", config_out, summary, {"runs": runs}, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
