"""The same transfer job in-process and under Ray Train (1 and 2 workers), on the vendored sample.

Ray Train's cost is partly fixed per run (controller and worker processes, process group, result
hand-back) and partly per step, so it is measured on three job lengths: a short one (``--steps`` per
epoch, repeated ``--repeats`` times, medians), a medium one (``--medium-epochs``, also run on 2
workers) and a long one (``--long-epochs``: over 10 minutes in-process on 2 cores, the size of a real
fine-tuning run). (The sample's source has about 150 batches, so an epoch is at most that long.)

``summary.ray_1worker_overhead`` = Ray Train 1-worker wall time / in-process wall time on the long
job (same job, same CPUs: the worker gets all of them); ``..._medium_job`` and ``..._short_job`` the
same on the others; ``summary.ray_fixed_overhead_s`` = median of (Ray − in-process) seconds over
the short runs; ``summary.scaling_efficiency_2workers`` = (2 workers' windows/s) / (2 x 1 worker's
windows/s) on the medium job, each of the two workers with half the CPUs. Wall times include the
worker group's start, not the Ray cluster's (reported separately).

Writes ``benchmarks/results/train_scaling.json`` and ``.md``. Usage: ``python
benchmarks/train_scaling.py [--steps 150] [--epochs 4] [--medium-epochs 40] [--long-epochs 300]
[--repeats 3]``.
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
    parser.add_argument("--steps", type=int, default=150, help="steps per epoch of the short job")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the short job")
    parser.add_argument("--medium-epochs", type=int, default=40, help="epochs of the medium job")
    parser.add_argument("--long-epochs", type=int, default=300, help="epochs of the long job")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the short job")
    args = parser.parse_args()
    started()
    import numpy as np
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

    def config(epochs: int) -> dict:
        return load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                           [f"catalog={catalog.root}", f"epochs={epochs}", f"optim.max_steps_per_epoch={args.steps}",
                            "progress=false", f"early_stopping.patience={epochs + 1}", "target.labelled_units=0",
                            "strategy=full"])

    cpus = os.cpu_count()
    batch = config(1)["optim"]["batch_size"]
    t0 = time.perf_counter()
    ensure_ray()
    t_cluster = time.perf_counter() - t0
    rows = []

    def run(job: str, epochs: int, workers: int) -> dict:
        t0 = time.perf_counter()
        if workers == 0:
            metrics = train_loop(config(epochs))
        else:
            metrics = fit_on_ray(config(epochs), workers=workers, cpus_per_worker=cpus / workers)
        wall = time.perf_counter() - t0
        # NOTE: no early stopping (patience above the epochs): every run trains every epoch it is given
        ran = int(metrics.get("epochs_run") or epochs)
        windows = max(1, workers) * ran * metrics["steps_per_epoch"] * batch
        row = {"job": job, "epochs": epochs, "epochs_run": ran, "steps_per_epoch": metrics["steps_per_epoch"],
               "workers": workers,
               "wall_s": wall,
               "windows_per_s": windows / wall, "test_rmse": metrics["test_rmse"],
               "cpus_per_worker": cpus / max(1, workers)}
        rows.append(row)
        who = f"Ray Train {workers} worker(s) x {cpus / workers:g} CPU" if workers else \
            f"in-process ({torch.get_num_threads()} threads)"
        print(f"{job} job, {who}: {wall:.1f} s, {windows / wall:,.0f} windows/s, test RMSE {metrics['test_rmse']:.2f}",
              flush=True)
        return row

    short = {w: [run("short", args.epochs, w)["wall_s"] for _ in range(args.repeats)] for w in (0, 1)}
    medium = {w: run("medium", args.medium_epochs, w) for w in (0, 1, 2)}
    long = {w: run("long", args.long_epochs, w) for w in (0, 1)}
    ray.shutdown()
    med = {w: float(np.median(v)) for w, v in short.items()}
    fixed = [r1 - r0 for r0, r1 in zip(short[0], short[1])]
    summary = {"ray_1worker_overhead": long[1]["wall_s"] / long[0]["wall_s"],
               "ray_1worker_overhead_medium_job": medium[1]["wall_s"] / medium[0]["wall_s"],
               "ray_1worker_overhead_short_job": med[1] / med[0],
               "ray_1worker_overhead_short_job_range": [min(short[1]) / max(short[0]), max(short[1]) / min(short[0])],
               "ray_fixed_overhead_s": float(np.median(fixed)),
               "scaling_efficiency_2workers": medium[2]["windows_per_s"] / (2 * medium[1]["windows_per_s"]),
               "in_process_s": {"short_median": med[0], "medium": medium[0]["wall_s"], "long": long[0]["wall_s"]},
               "ray_cluster_start_s": t_cluster, "target_overhead": TARGET,
               "test_rmse_long": {"in_process": long[0]["test_rmse"], "ray_1": long[1]["test_rmse"]},
               "test_rmse_medium": {"in_process": medium[0]["test_rmse"], "ray_1": medium[1]["test_rmse"],
                                    "ray_2": medium[2]["test_rmse"]}}
    table = ["| job | run | wall s | windows/s | test RMSE |", "|---|---|---:|---:|---:|"]
    for r in rows:
        who = (f"Ray Train {r['workers']} worker(s) x {r['cpus_per_worker']:g} CPU" if r["workers"]
               else f"in-process ({cpus} threads)")
        table.append(f"| {r['job']} ({r['epochs']} x {r['steps_per_epoch']} steps) | {who} | {r['wall_s']:.1f} | "
                     f"{r['windows_per_s']:,.0f} | {r['test_rmse']:.2f} |")
    table += ["", f"Ray 1-worker overhead: long job ({long[0]['wall_s'] / 60:.1f} min in-process) "
                  f"{summary['ray_1worker_overhead']:.2f}x, medium job "
                  f"{summary['ray_1worker_overhead_medium_job']:.2f}x, short job "
                  f"{summary['ray_1worker_overhead_short_job']:.2f}x (median of {args.repeats}; target <= {TARGET}); "
                  f"fixed cost per run {summary['ray_fixed_overhead_s']:.1f} s; 2-worker scaling efficiency "
                  f"{summary['scaling_efficiency_2workers']:.2f}; Ray cluster start {t_cluster:.1f} s"]
    config_out = {"epochs": {"short": args.epochs, "medium": args.medium_epochs, "long": args.long_epochs}, "max_steps_per_epoch": args.steps,
                  "repeats_short": args.repeats, "batch_size": batch, "encoder": "cnn_small",
                  "adaptation": config(1)["adaptation"]["name"], "cpus": cpus}
    write_results("train_scaling", config_out, summary, {"runs": rows}, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
