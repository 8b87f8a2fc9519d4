"""Label efficiency on C-MAPSS FD001: transfer from FD002–FD004 vs from scratch, 0–20 labelled engines.

For each seed: pretrain an encoder (supervised) on FD002–FD004; then for N labelled FD001 engines,
(a) transfer: the pretrained encoder, trained on the source plants plus the N engines with MMD
alignment to the unlabelled FD001 windows, and (b) scratch: the same model trained on the same N
engines alone. The full-label reference trains from scratch on all 100 FD001 engines. Evaluation:
the last window of every test_FD001 engine. Writes ``label_efficiency.json``, ``.md`` and ``.png``.

Usage: ``python benchmarks/label_efficiency.py [--seeds 0 1 2] [--engines 0 2 5 10 20]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, run_once, stats  # noqa: E402




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--engines", type=int, nargs="+", default=[0, 2, 5, 10, 20])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss")})
    runs = {"transfer": {n: [] for n in args.engines}, "scratch": {n: [] for n in args.engines if n >= 2},
            "full_label": []}
    for seed in args.seeds:
        pre = tempfile.mkdtemp(prefix="tl-le-pre-")
        run_once(catalog, "label_efficiency_pretrain.yaml", [f"seed={seed}", *args.overrides], run_dir=pre)
        for n in args.engines:
            metric = "target_val" if n >= 2 else "source_val"
            m = run_once(catalog, "label_efficiency_transfer.yaml",
                         [f"seed={seed}", f"pretrained={pre}", f"target.labelled_units={n}",
                          f"early_stopping.metric={metric}", *args.overrides])
            runs["transfer"][n].append(m)
            line = f"seed {seed} N={n:>3} transfer {m['test_rmse']:6.2f}"
            if n >= 2:
                s = run_once(catalog, "label_efficiency_transfer.yaml",
                        [f"seed={seed}", "source.domains=null", "adaptation=source_only",
                         f"target.labelled_units={n}", *args.overrides])
                runs["scratch"][n].append(s)
                line += f"  scratch {s['test_rmse']:6.2f}"
            print(line, flush=True)
        full = run_once(catalog, "label_efficiency_transfer.yaml",
                   [f"seed={seed}", "source.domains=null", "adaptation=source_only", "target.labelled_units=100",
                    *args.overrides])
        runs["full_label"].append(full)
        print(f"seed {seed} full label (100 engines) {full['test_rmse']:6.2f}", flush=True)
    curves = {k: {n: stats(v, "test_rmse") for n, v in d.items()} for k, d in runs.items() if k != "full_label"}
    full = stats(runs["full_label"], "test_rmse")
    summary = {"full_label_rmse": full["mean"],
               "transfer_rmse": {n: c["mean"] for n, c in curves["transfer"].items()},
               "scratch_rmse": {n: c["mean"] for n, c in curves["scratch"].items()}}
    if 5 in curves["transfer"]:
        summary["rmse_ratio_5_engines"] = curves["transfer"][5]["mean"] / full["mean"]
    lines = ["| labelled FD001 engines | transfer (FD002–4 → FD001) | from scratch |", "|---|---|---|"]
    for n in args.engines:
        t = curves["transfer"][n]
        s = curves["scratch"].get(n)
        lines.append(f"| {n} | {t['mean']:.2f} ± {t['std']:.2f} | "
                     + (f"{s['mean']:.2f} ± {s['std']:.2f}" if s else "—") + " |")
    lines.append(f"| 100 (full label) | | {full['mean']:.2f} ± {full['std']:.2f} |")
    table = "\n".join(lines) + f"\n\nTest RMSE (last window per engine), mean ± std over seeds {args.seeds}."
    _plot(curves, full, RESULTS / "label_efficiency.png")
    details = {k: {str(n): v for n, v in d.items()} for k, d in curves.items()} | {"full_label": full}
    write_results("label_efficiency", {"seeds": args.seeds, "engines": args.engines,
                                              "overrides": args.overrides}, summary, details, table)
    return 0


def _plot(curves: dict, full: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, style in (("transfer", "o-"), ("scratch", "s--")):
        ns = sorted(curves[name])
        ax.errorbar(ns, [curves[name][n]["mean"] for n in ns], yerr=[curves[name][n]["std"] for n in ns],
                    fmt=style, capsize=3, label=name)
    ax.axhline(full["mean"], color="gray", linestyle=":", label="all 100 engines, from scratch")
    ax.set_xlabel("labelled FD001 training engines")
    ax.set_ylabel("test RMSE (cycles)")
    ax.set_title("C-MAPSS FD001: label efficiency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
