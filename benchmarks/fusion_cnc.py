"""CNC milling tool condition (worn / unworn), leave one experiment out: the spindle's and each
axis's drive signals as four series inputs and the experiment's set-points (feedrate, clamp
pressure) as a tabular input, fused (``examples/configs/fusion_cnc.yaml``), against the four
signal groups fused without the set-points, each signal group alone, and the set-points alone.

Each of the 18 experiments is held out in turn: models train on the other 17 (a fifth of their
windows' experiments held out for selection by validation accuracy) and are scored on every
window of the held-out one. Window accuracy is the share of its windows called right; an
experiment counts as right when most of its windows are. The set-points alone are one row per
experiment, so their baseline is a logistic regression on the 17 others' rows (scikit-learn).

Published results on this dataset (Kaggle "CNC Mill Tool Wear") split rows or windows at random,
so windows of one experiment land on both sides and the experiment's own conditions give the
answer away; none are comparable with a held-out experiment.

Usage: ``python benchmarks/fusion_cnc.py [--seeds 0 1 2] [--jobs 2]``
Writes ``benchmarks/results/fusion_cnc.json`` and ``.md``.
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
from _transfer import DEFAULT_DATA, markdown_table, run_jobs  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "fusion_cnc.yaml"
GROUPS = ("spindle", "x", "y", "z")
MODELS = {"fused": (*GROUPS, "setpoints"), "signals": GROUPS, **{g: (g,) for g in GROUPS}}


def run_job(job: tuple) -> tuple:
    """One run in a worker process (one torch thread: two runs side by side use the two cores)."""
    import torch

    torch.set_num_threads(int(os.environ.get("TL_BENCH_THREADS", "1")))
    from transferline.catalog import Catalog
    from transferline.train import load_config, prepare_data, train_loop, validate

    held, model, seed, catalog_root, experiments = job
    t0 = time.perf_counter()
    config = load_config(CONFIG, [f"catalog={catalog_root}", "progress=false", "tracking.mlflow=false",
                                  f"seed={seed}"])
    data = config["data"]
    data["source"]["domains"] = [e for e in experiments if e != held]
    data["target"]["domains"] = [held]
    inputs = {k: v for k, v in data["inputs"].items() if k in MODELS[model]}
    if len(inputs) == 1:  # one signal group: a plain series run with its features
        (source,) = inputs.values()
        data.update(inputs={}, dataset=source["dataset"], spec_options=source["spec_options"])
        config["encoder"] = {"name": "cnn_small", "options": {}}
    else:
        data["inputs"] = inputs
        options = config["encoder"]["options"]
        options["encoders"] = {k: v for k, v in options["encoders"].items() if k in inputs}
    validate(config)
    metrics = train_loop(config, data=prepare_data(config, Catalog(catalog_root)))
    keep = {k: float(v) for k, v in metrics.items() if k.startswith("test_") and k.endswith("accuracy")}
    keep["seconds"] = time.perf_counter() - t0
    return job, keep


def setpoints_alone(catalog, experiments: list[str]) -> dict[str, float]:
    """Held-out experiment → the probability of its true condition from a logistic regression on
    the other experiments' set-points (one row each)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table = catalog.read("cnc", columns=["asset", "feedrate", "clamp_pressure", "tool_condition"]).to_pandas()
    rows = table.groupby("asset").first().loc[experiments]
    x, y = rows[["feedrate", "clamp_pressure"]].to_numpy(float), (rows["tool_condition"] == "worn").to_numpy(int)
    out = {}
    for i, held in enumerate(experiments):
        keep = np.arange(len(experiments)) != i
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x[keep], y[keep])
        out[held] = float(model.predict_proba(x[i:i + 1])[0, y[i]])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--root", type=Path, default=Path("/tmp/transferline-bench-cnc"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--folds", nargs="+", default=None, help="held-out experiments (default: all)")
    args = parser.parse_args()
    env = started()
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader

    catalog = Catalog(args.root / "catalog")
    catalog.ingest("cnc", create_reader("cnc-mill")(args.data / "cnc_mill"), progress=False)
    experiments = sorted(set(catalog.read("cnc", columns=["asset"]).column("asset").to_pylist()))
    folds = args.folds or experiments
    jobs = [(held, model, seed, str(catalog.root), tuple(experiments))
            for held in folds for model in args.models for seed in args.seeds]
    t0 = time.perf_counter()
    results = run_jobs(run_job, jobs, args.jobs, 3, lambda job: f"{job[0]} {job[1]:8s} seed {job[2]}")
    lr = setpoints_alone(catalog, experiments)

    def fold_accuracy(model: str, held: str, key: str = "test_accuracy") -> float:
        """Median over seeds of the held-out experiment's window accuracy."""
        return statistics.median(results[(held, model, s)][key] for s in args.seeds)

    def score(model: str, key: str = "test_accuracy") -> dict:
        per_seed = {"window": [statistics.fmean(results[(h, model, s)][key] for h in folds) for s in args.seeds],
                    "experiment": [statistics.fmean(results[(h, model, s)][key] > 0.5 for h in folds)
                                   for s in args.seeds]}
        return {"window_accuracy": statistics.fmean(fold_accuracy(model, h, key) for h in folds),
                "experiment_accuracy": statistics.fmean(fold_accuracy(model, h, key) > 0.5 for h in folds),
                "per_seed": {k: spread(v) for k, v in per_seed.items()},
                "per_fold": {h: [results[(h, model, s)][key] for s in args.seeds] for h in folds}}

    scores = {m: score(m) for m in args.models}
    lr_scores = {"window_accuracy": statistics.fmean(lr[h] > 0.5 for h in folds),
                 "experiment_accuracy": statistics.fmean(lr[h] > 0.5 for h in folds),
                 "per_fold": {h: lr[h] for h in folds}}
    without = {}
    if "fused" in args.models:
        for name in MODELS["fused"]:
            without[name] = score("fused", f"test_without_{name}_accuracy")
    singles = [m for m in args.models if m in GROUPS]
    best = max(singles, key=lambda m: scores[m]["window_accuracy"]) if singles else None
    summary = {
        **({"fused_window_accuracy": scores["fused"]["window_accuracy"],
            "fused_experiment_accuracy": scores["fused"]["experiment_accuracy"]} if "fused" in scores else {}),
        **({"signals_window_accuracy": scores["signals"]["window_accuracy"],
            "signals_experiment_accuracy": scores["signals"]["experiment_accuracy"]} if "signals" in scores else {}),
        **({"best_single_group": best, "best_single_window_accuracy": scores[best]["window_accuracy"],
            "best_single_experiment_accuracy": scores[best]["experiment_accuracy"]} if best else {}),
        "setpoints_alone_experiment_accuracy": lr_scores["experiment_accuracy"],
        **({"fused_without_setpoints_window_accuracy": without["setpoints"]["window_accuracy"]} if without else {}),
        "chance": "worn in 10 of 18 experiments",
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    details = {"models": scores, "setpoints_alone_logistic": lr_scores,
               "fused_without_input": {k: {kk: v[kk] for kk in ("window_accuracy", "experiment_accuracy")}
                                       for k, v in without.items()},
               "seconds_per_run": spread([r["seconds"] for r in results.values()])}
    rows = [[m, "+".join(MODELS[m]), f"{s['window_accuracy']:.3f}",
             f"{s['per_seed']['window']['min']:.3f}–{s['per_seed']['window']['max']:.3f}",
             f"{s['experiment_accuracy']:.3f}"] for m, s in scores.items()]
    rows.append(["set-points alone", "logistic regression on 17 rows", "", "",
                 f"{lr_scores['experiment_accuracy']:.3f}"])
    rows += [[f"fused, {k} absent at test", "", f"{v['window_accuracy']:.3f}", "", f"{v['experiment_accuracy']:.3f}"]
             for k, v in without.items()]
    table = markdown_table(["model", "inputs", "window accuracy", "seed range", "experiments right"], rows)
    table += (f"\n\nCNC milling, {len(folds)} experiments each held out in turn; mean over them of the median "
              f"over seeds {args.seeds}. Worn in 10 of 18 experiments. Git {env['git_sha'][:7]}"
              f"{' (dirty)' if env['git_dirty'] else ''}.")
    write_results("fusion_cnc", {"seeds": args.seeds, "models": {m: MODELS[m] for m in args.models}, "folds": folds,
                                 "jobs": args.jobs, "config": "examples/configs/fusion_cnc.yaml",
                                 "protocol": "leave one experiment out (18 folds)"},
                  summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
