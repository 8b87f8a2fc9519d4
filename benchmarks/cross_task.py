"""Cross-task transfer: an encoder pretrained for RUL regression (FD002–FD004), fine-tuned for
failure-within-30-cycles classification on a few labelled FD001 engines, against from scratch.

Test set: the last window of each test_FD001 engine, positive when its true RUL ≤ 30. Besides F1
(thresholded at 0.5) the file gives AUROC and average precision of P(fail within 30), which do not
depend on where the threshold falls, and each run's count of labelled training windows.
Writes ``benchmarks/results/cross_task.json`` and ``.md``.
Usage: ``python benchmarks/cross_task.py [--seeds 0 1 2 3 4] [--engines 2 5 10]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, markdown_table, run_once, stats  # noqa: E402

VARIANTS = {"scratch": [], "pretrained_rul": ["strategy=full"],
            "pretrained_rul_freeze": ["strategy=freeze_unfreeze", "strategy.options.freeze_epochs=3"]}
METRICS = ("test_f1", "test_auroc", "test_average_precision", "test_accuracy", "train_samples")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, seeds=(0, 1, 2, 3, 4))
    parser.add_argument("--engines", type=int, nargs="+", default=[2, 5, 10], help="labelled FD001 engines")
    args = parser.parse_args()
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss")})
    finetune = ["source.domains=null", "adaptation=source_only", "task=failure_within", "task.options.horizon=30",
                "early_stopping.metric=target_val"]
    runs = {f"{kind}/{n}": [] for kind in VARIANTS for n in args.engines}
    for seed in args.seeds:
        pre = tempfile.mkdtemp(prefix="tl-xt-")
        run_once(catalog, "label_efficiency_pretrain.yaml", [f"seed={seed}"], run_dir=pre)
        for n in args.engines:
            base = [f"seed={seed}", f"target.labelled_units={n}", *finetune]
            for kind, extra in VARIANTS.items():
                start = [f"pretrained={pre}"] if kind != "scratch" else []
                m = run_once(catalog, "label_efficiency_transfer.yaml", [*base, *start, *extra])
                runs[f"{kind}/{n}"].append(m)
                print(f"seed {seed} N={n} {kind}: F1 {m['test_f1']:.3f} AUROC {m['test_auroc']:.3f} "
                      f"({m['train_samples']} labelled windows, best epoch {m['best_epoch']})", flush=True)
    details = {k: {m.removeprefix("test_"): stats(v, m) for m in METRICS} for k, v in runs.items()}
    summary = {f"{k.replace('/', '_')}_engines_{m}": d[m]["median"] for k, d in details.items()
               for m in ("f1", "auroc", "average_precision")}
    five = {kind: details[f"{kind}/5"] for kind in VARIANTS} if 5 in args.engines else None
    if five:
        best = max(("pretrained_rul", "pretrained_rul_freeze"), key=lambda k: five[k]["f1"]["median"])
        summary["pretrained_beats_scratch_at_5"] = five[best]["f1"]["median"] > five["scratch"]["f1"]["median"]
        summary["pretrained_minus_scratch_f1_at_5"] = five[best]["f1"]["median"] - five["scratch"]["f1"]["median"]
        summary["pretrained_minus_scratch_auroc_at_5"] = five[best]["auroc"]["median"] - \
            five["scratch"]["auroc"]["median"]
        summary["scratch_auroc_spread_at_5"] = statistics.pstdev(five["scratch"]["auroc"]["values"])
        summary["best_pretrained_variant_at_5"] = best
    rows = [[str(n), kind, *(f"{details[f'{kind}/{n}'][m]['median']:.3f} ± {details[f'{kind}/{n}'][m]['std']:.3f}"
                             for m in ("f1", "auroc", "average_precision")),
             f"{details[f'{kind}/{n}']['train_samples']['median']:.0f}"]
            for n in args.engines for kind in VARIANTS]
    table = markdown_table(["labelled engines", "start", "F1", "AUROC", "average precision", "labelled windows"],
                           rows)
    table += (f"\n\nFailure within 30 cycles on test_FD001 (last window of each of 100 engines); medians ± std over "
              f"seeds {args.seeds}. A fifth of the labelled engines (at least one) validates for early stopping.")
    write_results("cross_task", {"seeds": args.seeds, "engines": args.engines, "variants": VARIANTS}, summary,
                  details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
