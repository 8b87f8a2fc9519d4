"""CNC milling quality surrogate, leave-one-experiment-out (18 experiments; only leaky row-level
splits are published for this data, so there is no published number to compare with).

Per seed, the deep-ensemble surrogate on set-points alone, on set-points and the tool's condition as a
known input (``context``; then it is no longer an outcome), on set-points plus features of the first
12 s of layer-1 machining signals from a randomly initialized encoder (``scratch``), and from the
same encoder pretrained on the tool-wear task (``tool_wear``; refitted per fold on the training
experiments only: cross-task transfer), against a prevalence predictor and a logistic regression on
the set-points in the same run. Scores: AUROC and Brier per outcome, and the coverage of the 90 %
prediction sets over all observed outcomes (calibrated: 0.85-0.95).

Writes ``benchmarks/results/process_surrogate.json`` and ``.md``.
Usage: ``python benchmarks/process_surrogate.py [--data DIR] [--seeds 0 1 2 ...]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import DEFAULT_DATA, markdown_table  # noqa: E402

VARIANTS = ("setpoints", "scratch", "tool_wear")
CONTEXT = "setpoints+tool_condition"


def pooled_coverage(data, held_out) -> float:
    from transferline.process import covered

    inside = covered(held_out, data.Y, data.outcomes)
    return float(np.nanmean(inside))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    args = parser.parse_args()
    started()
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.process import SurrogateConfig, baseline_metrics, leave_one_run_out, load_process_data
    from transferline.process.features import SignalFeatures, fold_features, run_windows

    catalog = Catalog(Path(tempfile.mkdtemp(prefix="process-bench-")))
    catalog.ingest("cnc", create_reader("cnc-mill")(args.data / "cnc_mill"))
    data = load_process_data(catalog, "cnc")
    signal_spec = SignalFeatures()
    windows = run_windows(catalog, data, signal_spec)
    with_context = load_process_data(catalog, "cnc", context=["tool_condition"])
    runs: dict[str, list[dict]] = {v: [] for v in (*VARIANTS, CONTEXT)}
    for seed in args.seeds:
        t0 = time.perf_counter()
        result = leave_one_run_out(with_context, SurrogateConfig(seed=seed))
        runs[CONTEXT].append({"seed": seed, "metrics": result["metrics"], "seconds": time.perf_counter() - t0,
                              "coverage_90": pooled_coverage(with_context, result["predictions"])})
        config = SurrogateConfig(seed=seed)
        for variant in VARIANTS:
            t0 = time.perf_counter()
            features = None
            if variant != "setpoints":
                spec = SignalFeatures(**{**asdict(signal_spec), "pretrain": variant, "seed": seed})
                features = lambda train, spec=spec: fold_features(windows, data, train, spec)  # noqa: E731
            result = leave_one_run_out(data, config, features=features)
            runs[variant].append({"seed": seed, "metrics": result["metrics"],
                                  "coverage_90": pooled_coverage(data, result["predictions"]),
                                  "seconds": time.perf_counter() - t0})
            m = result["metrics"]
            print(f"seed {seed} {variant:10s} visual AUROC {m['passed_visual_inspection']['auroc']:.3f} "
                  f"tool AUROC {m['tool_condition']['auroc']:.3f} coverage {runs[variant][-1]['coverage_90']:.2f} "
                  f"({runs[variant][-1]['seconds']:.0f} s)", flush=True)
    baselines = baseline_metrics(data)

    outcomes = [o.name for o in data.outcomes]

    def med(variant: str, outcome: str, key: str) -> dict:
        return spread([r["metrics"][outcome][key] for r in runs[variant]])

    details = {"variants": {v: {"per_seed": runs[v], **{f"{o}_{k}": med(v, o, k) for o in outcomes
                                                        for k in ("auroc", "brier", "coverage_90")},
                                "coverage_90_pooled": spread([r["coverage_90"] for r in runs[v]])}
                            for v in VARIANTS},
               "baselines": baselines, "runs_scored": {o: baselines["logistic"][o]["runs"] for o in outcomes}}
    context_outcomes = [o.name for o in with_context.outcomes]
    details["variants"][CONTEXT] = {"per_seed": runs[CONTEXT],
                                    **{f"{o}_{k}": med(CONTEXT, o, k) for o in context_outcomes
                                       for k in ("auroc", "brier", "coverage_90")},
                                    "coverage_90_pooled": spread([r["coverage_90"] for r in runs[CONTEXT]])}
    visual = details["variants"]["tool_wear"]["passed_visual_inspection_auroc"]["median"]
    summary = {
        "loeo_auroc_visual": visual,
        "loeo_auroc_visual_method": "set-points + tool-wear-pretrained signal features",
        "loeo_auroc_visual_setpoints_only": details["variants"]["setpoints"]["passed_visual_inspection_auroc"]["median"],
        "loeo_auroc_visual_scratch_signals": details["variants"]["scratch"]["passed_visual_inspection_auroc"]["median"],
        "loeo_auroc_visual_logistic": baselines["logistic"]["passed_visual_inspection"]["auroc"],
        "loeo_auroc_tool_condition": details["variants"]["tool_wear"]["tool_condition_auroc"]["median"],
        "loeo_auroc_tool_condition_setpoints_only": details["variants"]["setpoints"]["tool_condition_auroc"]["median"],
        "coverage_90": details["variants"]["tool_wear"]["coverage_90_pooled"]["median"],
        "coverage_90_setpoints_only": details["variants"]["setpoints"]["coverage_90_pooled"]["median"],
        "loeo_auroc_visual_with_tool_condition": details["variants"][CONTEXT]["passed_visual_inspection_auroc"]["median"],
        "coverage_90_with_tool_condition": details["variants"][CONTEXT]["coverage_90_pooled"]["median"],
        "target_coverage_90": [0.85, 0.95],
        "seeds": len(args.seeds), "experiments": len(data.runs),
    }
    names = {"setpoints": "ensemble, set-points", "scratch": "ensemble, set-points + signals (scratch encoder)",
             "tool_wear": "ensemble, set-points + signals (tool-wear-pretrained encoder)"}
    rows = []
    for v in VARIANTS:
        d = details["variants"][v]
        cells = [names[v]]
        for o in outcomes:
            a, b = d[f"{o}_auroc"], d[f"{o}_brier"]
            cells.append(f"{a['median']:.3f} [{a['min']:.2f}-{a['max']:.2f}] / {b['median']:.3f}")
        cells.append(f"{d['coverage_90_pooled']['median']:.2f}")
        rows.append(cells)
    d = details["variants"][CONTEXT]
    rows.append(["ensemble, set-points + tool condition as an input", "(an input)"]
                + [f"{d[f'{o}_auroc']['median']:.3f} [{d[f'{o}_auroc']['min']:.2f}-{d[f'{o}_auroc']['max']:.2f}] / "
                   f"{d[f'{o}_brier']['median']:.3f}" for o in context_outcomes]
                + [f"{d['coverage_90_pooled']['median']:.2f}"])
    for name in ("logistic", "prevalence"):
        b = baselines[name]
        rows.append([f"{name} (set-points, deterministic)"]
                    + [f"{b[o]['auroc']:.3f} / {b[o]['brier']:.3f}" for o in outcomes] + ["-"])
    table = (f"CNC milling, leave-one-experiment-out ({len(data.runs)} experiments; visual inspection scored on the "
             f"{baselines['logistic']['passed_visual_inspection']['runs']} finalized ones), median over "
             f"{len(args.seeds)} seeds [min-max]: AUROC / Brier; coverage of the 90 % prediction sets over all "
             "observed outcomes. The prevalence predictor's AUROC of 0 is the leave-one-out artifact (holding a "
             "positive out lowers the training rate).\n\n"
             + markdown_table(["model", *[f"{o} AUROC / Brier" for o in outcomes], "90 % coverage"], rows))
    config = {"seeds": args.seeds, "surrogate": asdict(SurrogateConfig()), "signals": asdict(signal_spec),
              "data": "cnc_mill (18 experiments, train.csv set-points and outcomes)"}
    write_results("process_surrogate", config, summary, details, table)
    print(table)
    print(statistics.median([r["seconds"] for r in runs["tool_wear"]]), "s per tool-wear LOEO")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
