"""Does the core still reproduce the committed series numbers? Reruns within-domain FD001 (every
encoder of ``within_domain.json``) and one CWRU load pair (every method of ``cwru_crossload.json``)
with the same configs and seeds, and compares each with the committed result.

A number is within seed noise when ``|new mean - committed mean| <= max(new std, committed std)``
(std over the same seeds). Writes ``benchmarks/results/core_check.json`` and ``.md``.
Usage: ``python benchmarks/core_check.py [--pair 0->1] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, markdown_table, method_overrides, run_seeds, stats  # noqa: E402


def compare(new: dict, old: dict) -> dict:
    delta = new["mean"] - old["mean"]
    noise = max(new["std"], old["std"])
    return {"new": new, "committed": {k: old[k] for k in ("mean", "std", "values") if k in old}, "delta": delta,
            "noise": noise, "within_noise": abs(delta) <= noise}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--pair", default="0->1", help="the CWRU load pair, source->target")
    args = parser.parse_args()
    env = started()
    within = json.loads((RESULTS / "within_domain.json").read_text())
    cwru = json.loads((RESULTS / "cwru_crossload.json").read_text())
    for name, old in (("within_domain", within), ("cwru_crossload", cwru)):
        if old["config"]["seeds"] != args.seeds:
            raise SystemExit(f"{name}.json was run with seeds {old['config']['seeds']}; pass --seeds to match")
    details = {}
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss"), "cwru": ("cwru", "cwru")})
    for encoder in within["config"]["encoders"]:
        options = ["encoder.options={}"] if encoder != "cnn_small" else []
        runs = run_seeds(catalog, "within_domain.yaml", ["source.domains=[FD001]", "target.domains=[FD001]",
                                                          f"encoder={encoder}", *options], args.seeds)
        details[f"within_domain FD001/{encoder} RMSE"] = compare(stats(runs, "test_rmse"),
                                                                within["details"][f"FD001/{encoder}"]["rmse"])
    src, tgt = args.pair.split("->")
    for method in cwru["config"]["methods"]:
        runs = run_seeds(catalog, "cwru_crossload.yaml", [f'source.domains=["{src}"]', f'target.domains=["{tgt}"]',
                                                          *method_overrides(method)], args.seeds)
        for r in runs:
            r["test_accuracy_pct"] = 100 * r["test_accuracy"]
        details[f"cwru {args.pair}/{method} accuracy %"] = compare(
            stats(runs, "test_accuracy_pct"), cwru["details"][args.pair][method]["accuracy"])
    for key, d in details.items():
        print(f"{key:45s} {d['new']['mean']:8.3f} vs {d['committed']['mean']:8.3f} (Δ {d['delta']:+.3f}, "
              f"noise {d['noise']:.3f})", flush=True)
    summary = {"within_seed_noise": all(d["within_noise"] for d in details.values()),
               "max_abs_delta_over_noise": max(abs(d["delta"]) / d["noise"] if d["noise"] else
                                               (0.0 if d["delta"] == 0 else float("inf")) for d in details.values()),
               "compared_against": {"within_domain": within["git_sha"], "cwru_crossload": cwru["git_sha"]},
               "code": env["git_sha"]}
    rows = [[k, f"{d['new']['mean']:.3f} ± {d['new']['std']:.3f}",
             f"{d['committed']['mean']:.3f} ± {d['committed']['std']:.3f}", f"{d['delta']:+.3f}",
             "yes" if d["within_noise"] else "no"] for k, d in details.items()]
    table = markdown_table(["number", "now", "committed", "Δ", "within seed noise"], rows) + (
        f"\n\nMean ± std over seeds {args.seeds}; within noise: |Δ| ≤ the larger std. Committed numbers from "
        f"within_domain.json ({within['git_sha'][:7]}) and cwru_crossload.json ({cwru['git_sha'][:7]}).")
    write_results("core_check", {"seeds": args.seeds, "pair": args.pair, "encoders": within["config"]["encoders"],
                                 "methods": cwru["config"]["methods"]}, summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
