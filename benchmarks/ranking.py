"""Source ranking on C-MAPSS: do transferability scores, computed on a target's few labelled engines
without fine-tuning, order the candidate pretrained encoders as fine-tuning does?

Candidates: supervised-RUL and masked-reconstruction pretraining on each C-MAPSS domain, with two
encoders (cnn_small, lstm). Targets: FD001–FD004 with 5 labelled train engines (drawn by seed); a
target's candidates are those pretrained on the other three domains. Ground truth per (target, seed):
the test RMSE (last window of every test engine) after fine-tuning each candidate on the 5 engines
(full fine-tuning, a fifth of the engines validating for early stopping). Scores: LogME, H-score,
k-NN and a linear (ridge) probe (both cross-validated with engines held out whole), and their mean
rank. Agreement: weighted Kendall τ (scipy's hyperbolic weighting, which counts swaps near the top
most) between a score and −RMSE, against two ground truths: the fine-tuning runs on the same draw
of engines, and per target the median RMSE over every draw's run (less noisy). How well the
ground truth agrees with itself (τ between two draws' runs, mean over pairs of draws) bounds what
any score can reach against one draw.
Writes ``benchmarks/results/ranking.json`` and ``.md``.
Usage: ``python benchmarks/ranking.py [--seeds 0 1 2] [--encoders cnn_small lstm]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, markdown_table, run_once  # noqa: E402

DOMAINS = ("FD001", "FD002", "FD003", "FD004")
OBJECTIVES = ("supervised", "masked")
METHODS = ("logme", "hscore", "knn", "linear", "mean_rank")
ANCHORS = {"logme": 0.51, "sfda": 0.71}  # weighted τ on the vision model-zoo benchmark (SFDA paper, ECCV 2022)


def main() -> int:
    from transferline.ranking import rank_candidates

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--encoders", nargs="+", default=["cnn_small", "lstm"])
    parser.add_argument("--engines", type=int, default=5, help="labelled engines of each target")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every pretraining and fine-tuning run (repeatable)")
    args = parser.parse_args()
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss")})
    root = Path(tempfile.mkdtemp(prefix="tl-rank-"))
    candidates = {}  # name → (run dir, domain, encoder)
    pretrain_seconds = {}
    for encoder in args.encoders:
        for objective in OBJECTIVES:
            for domain in DOMAINS:
                name = f"{domain}/{encoder}/{objective}"
                t0 = time.perf_counter()
                run_once(catalog, "label_efficiency_pretrain.yaml", [f'source.domains=["{domain}"]', f"encoder={encoder}",
                                                                     f"objective={objective}", "seed=0", *args.overrides],
                         run_dir=str(root / name.replace("/", "-")))
                pretrain_seconds[name] = time.perf_counter() - t0
                candidates[name] = (root / name.replace("/", "-"), domain, encoder)
                print(f"pretrained {name} in {pretrain_seconds[name]:.0f} s", flush=True)
    details, taus = {}, {m: [] for m in METHODS}
    pair_seconds = []
    for target in DOMAINS:
        names = [n for n, (_, domain, _) in candidates.items() if domain != target]
        for seed in args.seeds:
            rmse = {}
            for name in names:
                run_dir, _, encoder = candidates[name]
                m = run_once(catalog, "label_efficiency_transfer.yaml", [
                    "source.domains=null", "adaptation=source_only", f'target.domains=["{target}"]',
                    f"target.labelled_units={args.engines}", f"pretrained={run_dir}", f"encoder={encoder}",
                    f"seed={seed}", *args.overrides])
                rmse[name] = m["test_rmse"]
            ranked = rank_candidates([candidates[n][0] for n in names], "cmapss", target, methods=METHODS,
                                     labelled_units=args.engines, seed=seed, catalog=str(catalog.root), progress=False)
            pair_seconds += [r.seconds for r in ranked]
            scores = {m: {n: r.scores[m] for n, r in zip(names, ranked)} for m in METHODS}
            tau = {m: tau_w(scores[m], {n: -rmse[n] for n in names}) for m in METHODS}
            for m in METHODS:
                taus[m].append(tau[m])
            best_true = min(rmse, key=rmse.get)
            picked = {m: max(scores[m], key=scores[m].get) for m in METHODS}
            details[f"{target}/seed{seed}"] = {
                "test_rmse": rmse, "scores": scores, "tau_w": tau, "best_candidate": best_true,
                "picked": picked, "regret_rmse": {m: rmse[picked[m]] - rmse[best_true] for m in METHODS},
                "samples": ranked[0].samples, "prepare_seconds": ranked[0].extra["prepare_seconds"]}
            print(f"{target} seed {seed}: RMSE {min(rmse.values()):.2f}–{max(rmse.values()):.2f}; τ_w "
                  + ", ".join(f"{m} {tau[m]:+.2f}" for m in METHODS), flush=True)
    median_truth, truth_self, taus_median = {}, [], {m: [] for m in METHODS}
    for target in DOMAINS:
        runs = [details[f"{target}/seed{seed}"] for seed in args.seeds]
        names = list(runs[0]["test_rmse"])
        median_truth[target] = {n: statistics.median(r["test_rmse"][n] for r in runs) for n in names}
        truth = {n: -rmse for n, rmse in median_truth[target].items()}
        truth_self += [tau_w({n: -v for n, v in a["test_rmse"].items()}, {n: -v for n, v in b["test_rmse"].items()})
                       for i, a in enumerate(runs) for b in runs[i + 1:]]
        for r in runs:
            r["tau_w_median_truth"] = {m: tau_w(r["scores"][m], truth) for m in METHODS}
            for m in METHODS:
                taus_median[m].append(r["tau_w_median_truth"][m])
    per_method = {m: statistics.mean(taus[m]) for m in METHODS}
    per_method_median = {m: statistics.mean(taus_median[m]) for m in METHODS}
    per_target = {m: {t: statistics.median(details[f"{t}/seed{s}"]["tau_w"][m] for s in args.seeds) for t in DOMAINS}
                  for m in METHODS}
    best = max(METHODS, key=per_method.get)
    regret = {m: statistics.mean(d["regret_rmse"][m] for d in details.values()) for m in METHODS}
    summary = {"best_tau_w": per_method[best], "best_method": best, "logme_tau_w": per_method["logme"],
               "per_method_tau_w": per_method, "per_method_tau_w_std": {m: statistics.pstdev(taus[m]) for m in METHODS},
               "best_beats_logme": best != "logme" and per_method[best] > per_method["logme"],
               "per_method_tau_w_median_truth": per_method_median,
               "best_tau_w_median_truth": max(per_method_median.values()),
               "best_method_median_truth": max(METHODS, key=per_method_median.get),
               "truth_self_tau_w": statistics.mean(truth_self), "truth_self_tau_w_std": statistics.pstdev(truth_self),
               "mean_regret_rmse": regret, "candidates": len(candidates), "candidates_per_target": len(candidates)
               - len(candidates) // len(DOMAINS), "targets": len(DOMAINS),
               "seconds_per_pair_median": statistics.median(pair_seconds), "seconds_per_pair_max": max(pair_seconds),
               "anchors_vision": ANCHORS}
    rows = [[m, f"{per_method[m]:+.3f} ± {summary['per_method_tau_w_std'][m]:.3f}",
             *(f"{per_target[m][t]:+.2f}" for t in DOMAINS), f"{per_method_median[m]:+.3f}", f"{regret[m]:.2f}"]
            for m in METHODS]
    table = markdown_table(["score", "weighted τ (mean ± std)", *DOMAINS, "τ vs median truth",
                            "RMSE regret of its pick"], rows)
    table += (f"\n\n{len(candidates)} candidates ({', '.join(args.encoders)} × {', '.join(OBJECTIVES)} × 4 domains), "
              f"{summary['candidates_per_target']} per target (the other domains); weighted Kendall τ between each score "
              f"and −(fine-tuned test RMSE), per target the median over seeds {args.seeds}; mean over 4 targets × "
              f"{len(args.seeds)} seeds. Scoring takes {summary['seconds_per_pair_median']:.2f} s per candidate-target "
              f"pair (median; max {summary['seconds_per_pair_max']:.2f} s). Vision model-zoo reference: LogME 0.51, "
              "SFDA 0.71. τ vs median truth: each (target, seed)'s scores against the target's median fine-tuned "
              f"RMSE over the seeds. The ground truth agrees with itself at τ {summary['truth_self_tau_w']:+.3f} ± "
              f"{summary['truth_self_tau_w_std']:.3f} (two seeds' fine-tuning runs of one target, mean over pairs).")
    write_results("ranking", {"seeds": args.seeds, "encoders": args.encoders, "overrides": args.overrides, "objectives": OBJECTIVES,
                              "domains": DOMAINS, "labelled_engines": args.engines,
                              "pretrain": "benchmarks/configs/label_efficiency_pretrain.yaml",
                              "finetune": "benchmarks/configs/label_efficiency_transfer.yaml (source.domains=null)",
                              "pretrain_seconds": pretrain_seconds}, summary, details, table)
    return 0


def tau_w(score: dict[str, float], truth: dict[str, float]) -> float:
    """Weighted Kendall τ (scipy's hyperbolic weighting) between two scorings of the same candidates
    (higher is better in both)."""
    from scipy.stats import weightedtau

    names = list(truth)
    return float(weightedtau([score[n] for n in names], [truth[n] for n in names]).statistic)


if __name__ == "__main__":
    raise SystemExit(main())
