"""CWRU cross-load fault diagnosis: 12 load pairs (0–3 hp), source-only vs adaptation, over seeds.

Target accuracy (percent) on the last 20% of each target recording (``--protocol time``, ours); model
selection by source validation accuracy only. Writes ``benchmarks/results/cwru_crossload.json`` and ``.md``.

``--protocol random`` is UDTL's instead: non-overlapping windows (stride = length = 1024), each
recording's windows dealt at random, 80% to training (target: unlabelled) and 20% to testing, so test
windows sit between training windows of the same recording (``data.window_split``). It writes
``cwru_crossload_random.json`` and ``.md``.

Usage: ``python benchmarks/cwru_crossload.py [--seeds 0 1 2] [--methods dann cdan jmmd adabn] [--protocol time|random]
[--data ../shared/data]`` (``--methods`` takes options after a colon: ``mmd:entropy=0.3,pseudo=1.0,threshold=0.95``)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import (add_common_args, bench_catalog, markdown_table, mean_std, method_overrides,  # noqa: E402
                       run_seeds, stats)

PAIRS = [(a, b) for a in "0123" for b in "0123" if a != b]
# UDTL (Zhao et al., IEEE TIM 2021), averages over the 12 pairs, percent.
ANCHORS = {"source_only": 93.27, "coral": 95.11, "mmd": 97.49, "jmmd": 99.60, "cdan": 99.32, "dann": 99.71}
PROTOCOLS = {
    "time": ("cwru_crossload", [], "the last 20% of each target recording (split in time; windows every 256 samples)"),
    "random": ("cwru_crossload_random", ["data.time_split=null", "data.window_split=0.8", "data.spec_options.stride=1024"],
               "20% of each target recording's windows dealt at random (UDTL's protocol; non-overlapping windows)"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--methods", nargs="+", default=["dann"],
                        help="adaptation names, optionally with options: dann:weight=0.1")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every run (repeatable)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="time",
                        help="time: the end of each recording is tested (ours); random: UDTL's random window split")
    args = parser.parse_args()
    name, protocol, tested = PROTOCOLS[args.protocol]
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cwru": ("cwru", "cwru")})
    methods = ["source_only", *[m for m in args.methods if m != "source_only"]]
    details = {}
    for src, tgt in PAIRS:
        t0 = time.perf_counter()
        entry = {}
        for method in methods:
            runs = run_seeds(catalog, "cwru_crossload.yaml", [f'source.domains=["{src}"]', f'target.domains=["{tgt}"]',
                                                              *method_overrides(method), *protocol, *args.overrides], args.seeds)
            for r in runs:
                r["test_accuracy_pct"] = 100 * r["test_accuracy"]
            entry[method] = {"accuracy": stats(runs, "test_accuracy_pct"), "macro_f1": stats(runs, "test_macro_f1")}
            print(f"{src}→{tgt} {method:12s} acc {entry[method]['accuracy']['mean']:6.2f} ± "
                  f"{entry[method]['accuracy']['std']:5.2f}", flush=True)
        entry["wall_seconds"] = time.perf_counter() - t0
        details[f"{src}->{tgt}"] = entry
    per_method = {m: mean_std([details[f"{s}->{t}"][m]["accuracy"]["mean"] for s, t in PAIRS])[0] for m in methods}
    adapted = [m for m in methods if m != "source_only"]
    best = max(adapted, key=per_method.get) if adapted else "source_only"
    summary = {"protocol": args.protocol, "best_method": best, "mean_accuracy": per_method[best],
               "source_only_mean_accuracy": per_method["source_only"], "per_method_mean_accuracy": per_method,
               "anchors_udtl": ANCHORS, "wall_minutes": sum(d["wall_seconds"] for d in details.values()) / 60}
    rows = [[f"{s}→{t}", *[f"{details[f'{s}->{t}'][m]['accuracy']['mean']:.2f} ± "
                             f"{details[f'{s}->{t}'][m]['accuracy']['std']:.2f}" for m in methods]] for s, t in PAIRS]
    rows.append(["mean", *[f"{per_method[m]:.2f}" for m in methods]])
    header = ["pair", *[f"{m} (ours)" for m in methods]]
    table = markdown_table(header, rows) + (f"\n\nTarget accuracy % on {tested}, mean ± std over seeds {args.seeds}. UDTL averages "
                                f"(random window split): source-only 93.27, CORAL 95.11, MMD 97.49, JMMD 99.60, CDAN 99.32, "
                                f"DANN 99.71.")
    write_results(name, {"seeds": args.seeds, "methods": methods, "protocol": args.protocol,
                         "protocol_overrides": protocol, "overrides": args.overrides,
                         "config": "benchmarks/configs/cwru_crossload.yaml"}, summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
