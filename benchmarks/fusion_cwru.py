"""CWRU with three sensors as three inputs: drive-end, fan-end and base accelerometers fused, against
each sensor alone and each pair, within one load and across loads; and the fused model with one
sensor down at test time against a model trained on the other two alone.

Every model trains on the first 80% of each recording (a fifth of that held out for selection by
source validation accuracy) and is tested on the last 20% of the target load's recordings.
Within-load: source = target load, no adaptation. Cross-load: the 12 load pairs, MMD + entropy
(0.3) on the features (fused features for the fused models), the best single-sensor method of
``cwru_crossload.json``. Encoders: WDCNN per sensor; fusion: gated (softmax weights over the
present sensors) with modality dropout 0.2 (``examples/configs/fusion_cwru.yaml``).

The nine fault classes: the normal recordings carry no base signal (and at 1-3 hp only a
drive-end prefix), so with them in, which sensors are present would tell the class.

Usage: ``python benchmarks/fusion_cwru.py [--seeds 0 1 2] [--jobs 2] [--pairs 0-3 3-0]``
Writes ``benchmarks/results/fusion_cwru.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import (DEFAULT_DATA, accuracy_run, markdown_table, mean_of_medians, run_jobs,  # noqa: E402
                       seed_values)

SENSORS = ("de", "fe", "ba")
PAIRS = [(a, b) for a in "0123" for b in "0123" if a != b]
MODELS = {"fused": SENSORS, "de": ("de",), "fe": ("fe",), "ba": ("ba",),
          "de+fe": ("de", "fe"), "de+ba": ("de", "ba"), "fe+ba": ("fe", "ba")}
WITHIN_MODELS = ("fused", "de", "fe", "ba")
CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "fusion_cwru.yaml"


def fault_catalog(root: Path, data: Path, sensors: tuple[str, ...] = SENSORS):
    """``sensors`` of the 36 fault recordings, one dataset each (a no-op when already there)."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader

    faults = root / "faults"
    for path in sorted((data / "cwru").glob("*HP/12k_Drive_End_*.mat")):
        link = faults / path.parent.name / path.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path.resolve(), link)
    catalog = Catalog(root / "catalog")
    for sensor in sensors:
        catalog.ingest(f"cwru_{sensor}", create_reader("cwru")(faults, sensor=sensor.upper()), progress=False)
    return catalog


def overrides(model: str, src: str, tgt: str, fusion: str) -> list[str]:
    inputs = MODELS[model]
    common = [f'source.domains=["{src}"]', f'target.domains=["{tgt}"]', "tracking.mlflow=false"]
    if src == tgt:
        common.append("adaptation=source_only")
    if len(inputs) == 1:
        return [*common, "data.inputs={}", f"data.dataset=cwru_{inputs[0]}", "encoder=wdcnn"]
    return [*common, "data.inputs={" + ", ".join(f"{s}: cwru_{s}" for s in inputs) + "}",
            f"encoder.options.fusion={fusion}"]


def run_job(job: tuple) -> tuple:
    """One run in a worker process."""
    setting, src, tgt, model, seed, catalog_root, fusion, extra = job
    return job, accuracy_run(catalog_root, CONFIG, [f"seed={seed}", *overrides(model, src, tgt, fusion), *extra])


def cwru_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the CWRU cross-load benchmarks: data, catalog root, seeds, jobs, load pairs, overrides."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--root", type=Path, default=Path("/tmp/transferline-bench-fusion"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each")
    parser.add_argument("--pairs", nargs="+", default=[f"{a}-{b}" for a, b in PAIRS], help="cross-load pairs SRC-TGT")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every run (repeatable)")
    return parser


def main() -> int:
    parser = cwru_parser(__doc__)
    parser.add_argument("--loads", nargs="+", default=list("0123"), help="within-load runs on these loads")
    parser.add_argument("--fusion", default="gated", choices=["concat", "gated", "attention"])
    args = parser.parse_args()
    env = started()
    catalog = fault_catalog(args.root, args.data)
    pairs = [tuple(p.split("-")) for p in args.pairs]
    common = (str(catalog.root), args.fusion, tuple(args.extra))
    jobs = [("within", load, load, model, seed, *common)
            for load in args.loads for model in WITHIN_MODELS for seed in args.seeds]
    jobs += [("cross", src, tgt, model, seed, *common) for src, tgt in pairs for model in MODELS for seed in args.seeds]
    t0 = time.perf_counter()
    results = run_jobs(run_job, jobs, args.jobs, 5, lambda job: f"{job[0]} {job[1]}→{job[2]} {job[3]:6s} seed {job[4]}")

    def acc(setting: str, src: str, tgt: str, model: str, key: str = "test_accuracy") -> list[float]:
        return seed_values(results, (setting, src, tgt), model, args.seeds, key)

    def mean_over(cells: list[tuple], model: str, key: str = "test_accuracy") -> dict:
        return mean_of_medians(results, cells, model, args.seeds, key)

    within_cells = [("within", load, load) for load in args.loads]
    cross_cells = [("cross", src, tgt) for src, tgt in pairs]
    within = {m: mean_over(within_cells, m) for m in WITHIN_MODELS}
    cross = {m: mean_over(cross_cells, m) for m in MODELS}
    missing = {}
    for sensor in SENSORS:
        rest = "+".join(s for s in SENSORS if s != sensor)
        fused_without = mean_over(cross_cells, "fused", f"test_without_{sensor}_accuracy")["mean_of_medians"]
        missing[sensor] = {"fused_without": fused_without, "trained_without": cross[rest]["mean_of_medians"],
                           "drop": cross[rest]["mean_of_medians"] - fused_without}
    best_cross = max(SENSORS, key=lambda s: cross[s]["mean_of_medians"])
    best_within = max(SENSORS, key=lambda s: within[s]["mean_of_medians"])
    summary = {
        "fused_accuracy_crossload": cross["fused"]["mean_of_medians"],
        "best_single_accuracy_crossload": cross[best_cross]["mean_of_medians"], "best_single_crossload": best_cross,
        "fused_minus_best_single_crossload": cross["fused"]["mean_of_medians"] - cross[best_cross]["mean_of_medians"],
        "fused_accuracy_within": within["fused"]["mean_of_medians"],
        "best_single_accuracy_within": within[best_within]["mean_of_medians"], "best_single_within": best_within,
        "missing_one_max_drop": max(m["drop"] for m in missing.values()),
        "missing_one_worst_sensor": max(missing, key=lambda s: missing[s]["drop"]),
        "targets": {"fused_minus_best_single_crossload": ">= 0.01", "missing_one_max_drop": "<= 0.01"},
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    details = {"within": {m: {**within[m], "per_load": {c[1]: acc(*c, m) for c in within_cells}} for m in within},
               "cross": {m: {**cross[m], "per_pair": {f"{c[1]}->{c[2]}": acc(*c, m) for c in cross_cells}}
                         for m in cross},
               "missing_one": missing,
               "fused_without_per_pair": {s: {f"{c[1]}->{c[2]}": acc(*c, "fused", f"test_without_{s}_accuracy")
                                              for c in cross_cells} for s in SENSORS},
               "seconds_per_run": spread([r["seconds"] for r in results.values()])}
    rows = [[m, f"{within[m]['mean_of_medians']:.4f}" if m in within else "",
             f"{cross[m]['mean_of_medians']:.4f}", f"{cross[m]['per_seed']['min']:.4f}–{cross[m]['per_seed']['max']:.4f}"]
            for m in MODELS]
    table = markdown_table(["model (inputs)", "within-load acc", "cross-load acc", "cross-load, seed range"], rows)
    table += "\n\n" + markdown_table(
        ["sensor down at test", "fused model", "model trained without it", "drop"],
        [[s, f"{m['fused_without']:.4f}", f"{m['trained_without']:.4f}", f"{m['drop']:+.4f}"]
         for s, m in missing.items()])
    table += (f"\n\nCWRU 12 kHz drive-end faults (9 classes), accuracy on the last 20% of each target recording; "
              f"mean over {len(within_cells)} loads / {len(cross_cells)} load pairs of the median over seeds "
              f"{args.seeds}. Fusion: {args.fusion}. Cross-load: MMD + entropy. Git {env['git_sha'][:7]}"
              f"{' (dirty)' if env['git_dirty'] else ''}.")
    write_results("fusion_cwru", {"seeds": args.seeds, "pairs": args.pairs, "loads": args.loads, "fusion": args.fusion,
                                  "overrides": args.extra, "jobs": args.jobs,
                                  "config": "examples/configs/fusion_cwru.yaml", "models": MODELS,
                                  "classes": "9 fault classes (normal left out: no base signal)"},
                  summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
