"""Pretraining ablation: none vs supervised vs masked vs contrastive vs GAN, same fine-tuning budget.

* C-MAPSS: pretrain on FD002–FD004 (labels used only by ``supervised``), fine-tune on 5 labelled
  FD001 engines alone (one held out for early stopping), test RMSE on test_FD001.
* CWRU: pretrain WDCNN on the 0 hp recordings, fine-tune source-only on 0 hp, test accuracy on
  the last 20% of the 3 hp recordings (the hardest shift for source-only models here).

Writes ``benchmarks/results/pretraining_ablation.json`` and ``.md``.
Usage: ``python benchmarks/pretraining_ablation.py [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, run_once, stats  # noqa: E402


OBJECTIVES = ["none", "supervised", "masked", "contrastive", "gan"]
SETUPS = {
    "cmapss": {"pretrain": "label_efficiency_pretrain.yaml", "finetune": "label_efficiency_transfer.yaml",
               "finetune_overrides": ["source.domains=null", "adaptation=source_only", "target.labelled_units=5",
                                      "early_stopping.metric=target_val"],
               "metric": "test_rmse", "pretrain_overrides": ["epochs=6", "optim.max_steps_per_epoch=80"]},
    "cwru": {"pretrain": "ablation_cwru_pretrain.yaml", "finetune": "cwru_crossload.yaml",
             # NOTE: 8 epochs, the budget the committed results were measured with (cwru_crossload now runs 20)
             "finetune_overrides": ['source.domains=["0"]', 'target.domains=["3"]', "adaptation=source_only",
                                    "epochs=8"],
             "metric": "test_accuracy", "pretrain_overrides": []},
}



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS))
    args = parser.parse_args()
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss"), "cwru": ("cwru", "cwru")})
    details = {}
    for setup in args.setups:
        cfg = SETUPS[setup]
        for objective in OBJECTIVES:
            runs = []
            for seed in args.seeds:
                overrides = [f"seed={seed}", *cfg["finetune_overrides"]]
                if objective != "none":
                    pre = tempfile.mkdtemp(prefix="tl-abl-")
                    run_once(catalog, cfg["pretrain"], [f"seed={seed}", f"objective={objective}",
                                                   *cfg["pretrain_overrides"]], run_dir=pre)
                    overrides.append(f"pretrained={pre}")
                runs.append(run_once(catalog, cfg["finetune"], overrides))
            details[f"{setup}/{objective}"] = stats(runs, cfg["metric"])
            print(f"{setup:7s} {objective:12s} {cfg['metric']} {details[f'{setup}/{objective}']['mean']:.4f} ± "
                  f"{details[f'{setup}/{objective}']['std']:.4f}", flush=True)
    summary = {}
    for setup in args.setups:
        higher = SETUPS[setup]["metric"] == "test_accuracy"
        scores = {o: details[f"{setup}/{o}"]["mean"] for o in OBJECTIVES}
        best = (max if higher else min)(scores, key=scores.get)
        summary[setup] = {"metric": SETUPS[setup]["metric"], "none": scores["none"], "best_objective": best,
                          "best": scores[best], "by_objective": scores}
    lines = ["| pretraining | C-MAPSS FD001, 5 engines: test RMSE | CWRU 0→3 hp: target accuracy % |",
             "|---|---|---|"]
    for o in OBJECTIVES:
        c, w = details.get(f"cmapss/{o}"), details.get(f"cwru/{o}")
        lines.append(f"| {o} | " + (f"{c['mean']:.2f} ± {c['std']:.2f}" if c else "—") + " | "
                     + (f"{100 * w['mean']:.2f} ± {100 * w['std']:.2f}" if w else "—") + " |")
    table = "\n".join(lines) + f"\n\nMean ± std over seeds {args.seeds}; the same fine-tuning budget for every row."
    write_results("pretraining_ablation", {"seeds": args.seeds, "setups": args.setups}, summary, details,
                         table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
