"""CWRU across sensors: a fault classifier trained on the drive-end accelerometer, carried to the
fan-end accelerometer of the same motor at the same load (another transfer path than across loads),
source-only against each adaptation method; and whether label-free model selection avoids
negative transfer.

Per load (0-3 hp): source ``cwru_de`` (labelled), target ``cwru_fe`` (unlabelled training part),
test: the last 20% of each fan-end recording. 9 fault classes (the 36 fault recordings; the normal
recordings are left out as in ``fusion_cwru.py``, since the 1-3 hp normals carry the drive end only).
Each run keeps the epoch of lowest Deep Embedded Validation risk (``early_stopping.metric=dev``:
source-validation losses weighted by target/source density, no target label). A reference trains on
the fan end itself with its labels (``fe_supervised``, same split), the ceiling of this transfer.

Label-free selection per (load, seed) picks one of the methods by (a) source risk: the highest
source-validation accuracy, or (b) DEV: the lowest DEV risk, each read at the run's kept epoch.
``summary.selection_no_worse_rate_<rule>``: the share of (load, seed) cells where the picked model's
target accuracy is at least source-only's minus 1 point (issue 20, item 3).

Usage: ``python benchmarks/cwru_crosssensor.py [--seeds 0 1 2] [--jobs 2] [--loads 0 1 2 3]``.
Writes ``benchmarks/results/cwru_crosssensor.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import CONFIGS, DEFAULT_DATA, markdown_table, method_overrides, run_jobs  # noqa: E402

METHODS = ["source_only", "mmd:entropy=0.3", "cdan:entropy=0.3", "dann", "mmd:entropy=0.3,pseudo=1.0,threshold=0.95"]
REFERENCE = "fe_supervised"
RULES = {"source_risk": ("source_val_accuracy", max), "dev": ("source_val_dev_risk", min)}


def run_job(job: tuple) -> tuple:
    """One run in a worker process (one torch thread: two runs side by side use the two cores); the
    scores of the kept epoch come from the run's own per-epoch report."""
    import torch

    torch.set_num_threads(int(os.environ.get("TL_BENCH_THREADS", "1")))
    from transferline.catalog import Catalog
    from transferline.train import load_config, prepare_data, train_loop

    load, method, seed, catalog_root, extra = job
    if method == REFERENCE:  # the fan end with its own labels: source and test both fan end
        roles = ["data.dataset=cwru_fe", "adaptation=source_only", "early_stopping.metric=source_val"]
    else:
        roles = ["data.dataset=cwru_de", "target.dataset=cwru_fe", "test.dataset=cwru_fe", *method_overrides(method),
                 "early_stopping.metric=dev"]
    config = load_config(CONFIGS / "cwru_crossload.yaml",
                         [f"catalog={catalog_root}", "progress=false", "tracking.mlflow=false", f"seed={seed}",
                          f'source.domains=["{load}"]', f'target.domains=["{load}"]',
                          *roles, *extra])
    t0 = time.perf_counter()
    records: list[dict] = []
    metrics = train_loop(config, data=prepare_data(config, Catalog(catalog_root)), report=records.append)
    kept = records[metrics["best_epoch"] - 1]
    keep = {"test_accuracy": float(metrics["test_accuracy"]), "test_macro_f1": float(metrics["test_macro_f1"]),
            "source_val_accuracy": float(kept["source_val_accuracy"]), "best_epoch": int(metrics["best_epoch"]),
            "seconds": time.perf_counter() - t0}
    if "source_val_dev_risk" in kept:
        keep["source_val_dev_risk"] = float(kept["source_val_dev_risk"])
    return job, keep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--root", type=Path, default=Path("/tmp/transferline-bench-fusion"),
                        help="where the per-sensor fault catalog is built (shared with fusion_cwru.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each")
    parser.add_argument("--loads", nargs="+", default=list("0123"))
    parser.add_argument("--methods", nargs="+", default=METHODS, help="adaptation names with options (source_only first)")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every run (repeatable)")
    args = parser.parse_args()
    env = started()
    from fusion_cwru import fault_catalog

    catalog = fault_catalog(args.root, args.data)
    methods = ["source_only", *[m for m in args.methods if m != "source_only"]]
    models = [*methods, REFERENCE]
    jobs = [(load, m, seed, str(catalog.root), tuple(args.extra)) for load in args.loads for m in models
            for seed in args.seeds]
    t0 = time.perf_counter()
    results = run_jobs(run_job, jobs, args.jobs, 3, lambda job: f"load {job[0]} {job[1]:12s} seed {job[2]}")

    def per_load(model: str, key: str = "test_accuracy") -> dict:
        return {load: [results[(load, model, s)][key] for s in args.seeds] for load in args.loads}

    def mean_of_medians(model: str) -> float:
        return statistics.fmean(statistics.median(v) for v in per_load(model).values())

    accuracy = {m: mean_of_medians(m) for m in models}
    per_seed = {m: spread([statistics.fmean(results[(load, m, s)]["test_accuracy"] for load in args.loads)
                           for s in args.seeds]) for m in models}
    selection = {}
    for rule, (key, pick) in RULES.items():
        cells = []
        for load in args.loads:
            for s in args.seeds:
                chosen = pick(methods, key=lambda m: results[(load, m, s)][key])
                base = results[(load, "source_only", s)]["test_accuracy"]
                got = results[(load, chosen, s)]["test_accuracy"]
                best = max(results[(load, m, s)]["test_accuracy"] for m in methods)
                cells.append({"load": load, "seed": s, "picked": chosen, "accuracy": got, "source_only": base,
                              "best_method_accuracy": best, "no_worse": got >= base - 0.01})
        selection[rule] = {"no_worse_rate": statistics.fmean(c["no_worse"] for c in cells),
                           "mean_accuracy": statistics.fmean(c["accuracy"] for c in cells),
                           "mean_regret_vs_best": statistics.fmean(c["best_method_accuracy"] - c["accuracy"]
                                                                   for c in cells),
                           "cells": cells}
    adapted = [m for m in methods if m != "source_only"]
    best = max(adapted, key=accuracy.get)
    summary = {"source_only_accuracy": accuracy["source_only"], "best_method": best, "best_method_accuracy": accuracy[best],
               "per_method_accuracy": {m: accuracy[m] for m in methods},
               "fe_supervised_accuracy": accuracy[REFERENCE],
               **{f"selection_no_worse_rate_{r}": v["no_worse_rate"] for r, v in selection.items()},
               **{f"selection_accuracy_{r}": v["mean_accuracy"] for r, v in selection.items()},
               "wall_minutes": (time.perf_counter() - t0) / 60}
    details = {"per_load": {m: per_load(m) for m in models}, "per_seed_mean": per_seed, "selection": selection,
               "kept_epoch": {m: per_load(m, "best_epoch") for m in models},
               "seconds_per_run": spread([r["seconds"] for r in results.values()])}
    rows = [[m, *[f"{statistics.median(per_load(m)[load]):.4f}" for load in args.loads], f"{accuracy[m]:.4f}",
             f"{per_seed[m]['min']:.4f}–{per_seed[m]['max']:.4f}"] for m in models]
    table = markdown_table(["method", *[f"{load} hp" for load in args.loads], "mean", "seed range"], rows)
    table += "\n\n" + markdown_table(
        ["label-free selection", "picked no worse than source-only − 1 pt", "mean accuracy", "regret vs best method"],
        [[r, f"{v['no_worse_rate']:.2f} ({sum(c['no_worse'] for c in v['cells'])}/{len(v['cells'])})",
          f"{v['mean_accuracy']:.4f}", f"{v['mean_regret_vs_best']:.4f}"] for r, v in selection.items()])
    table += (f"\n\nCWRU 12 kHz, 9 fault classes, drive end (labelled) → fan end (unlabelled) at the same load; "
              f"accuracy on the last 20% of each fan-end recording, median over seeds {args.seeds}, mean over loads. "
              f"Checkpoints kept by DEV risk; {REFERENCE}: trained on the fan end's own labels. "
              f"Git {env['git_sha'][:7]}{' (dirty)' if env['git_dirty'] else ''}.")
    write_results("cwru_crosssensor", {"seeds": args.seeds, "loads": args.loads, "methods": methods,
                                       "overrides": args.extra, "jobs": args.jobs,
                                       "config": "benchmarks/configs/cwru_crossload.yaml",
                                       "classes": "9 fault classes (normal left out)",
                                       "selection_rules": {r: k for r, (k, _) in RULES.items()}},
                  summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
