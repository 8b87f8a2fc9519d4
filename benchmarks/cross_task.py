"""Cross-task transfer: an encoder pretrained for RUL regression (FD002–FD004), fine-tuned for
failure-within-30-cycles classification on a few labelled FD001 engines, against from scratch.

Test set: the last window of each test_FD001 engine, positive when its true RUL ≤ 30.
Writes ``benchmarks/results/cross_task.json`` and ``.md``.
Usage: ``python benchmarks/cross_task.py [--seeds 0 1 2] [--engines 5 10]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, run_once, stats  # noqa: E402




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--engines", type=int, nargs="+", default=[5, 10])
    args = parser.parse_args()
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss")})
    finetune = ["source.domains=null", "adaptation=source_only", "task=failure_within", "task.options.horizon=30",
                "early_stopping.metric=target_val"]
    runs = {f"{kind}/{n}": [] for kind in ("pretrained_rul", "scratch") for n in args.engines}
    for seed in args.seeds:
        pre = tempfile.mkdtemp(prefix="tl-xt-")
        run_once(catalog, "label_efficiency_pretrain.yaml", [f"seed={seed}"], run_dir=pre)
        for n in args.engines:
            base = [f"seed={seed}", f"target.labelled_units={n}", *finetune]
            runs[f"pretrained_rul/{n}"].append(run_once(catalog, "label_efficiency_transfer.yaml", [*base,
                                                                                                f"pretrained={pre}"]))
            runs[f"scratch/{n}"].append(run_once(catalog, "label_efficiency_transfer.yaml", base))
            print(f"seed {seed} N={n} pretrained F1 {runs[f'pretrained_rul/{n}'][-1]['test_f1']:.3f} "
                  f"scratch F1 {runs[f'scratch/{n}'][-1]['test_f1']:.3f}", flush=True)
    details = {k: {"f1": stats(v, "test_f1"), "accuracy": stats(v, "test_accuracy")} for k, v in runs.items()}
    summary = {f"{k.replace('/', '_')}_engines_f1": d["f1"]["mean"] for k, d in details.items()}
    lines = ["| labelled FD001 engines | RUL-pretrained encoder: F1 / accuracy | from scratch: F1 / accuracy |",
             "|---|---|---|"]
    for n in args.engines:
        p, s = details[f"pretrained_rul/{n}"], details[f"scratch/{n}"]
        lines.append(f"| {n} | {p['f1']['mean']:.3f} ± {p['f1']['std']:.3f} / {p['accuracy']['mean']:.3f} | "
                     f"{s['f1']['mean']:.3f} ± {s['f1']['std']:.3f} / {s['accuracy']['mean']:.3f} |")
    table = "\n".join(lines) + f"\n\nFailure within 30 cycles on test_FD001 (last windows); seeds {args.seeds}."
    write_results("cross_task", {"seeds": args.seeds, "engines": args.engines}, summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
