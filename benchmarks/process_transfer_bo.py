"""Warm-started Bayesian optimization across related tasks, against a cold start, on BoTorch's
standard test functions with shifted optima and scaled outputs.

Families (each task: f_t(x) = a_t f(x - s_t) + b_t, to be minimized): Branin (2-D, shift up to 1 in
each input, a in [0.5, 2], b in [-10, 10]) and Hartmann-3 (shift up to 0.1, a in [0.5, 2], b in
[-1, 1]). Every target task has three source tasks of its family, each with 20 experiments on a
scrambled Sobol design (an earlier machine's history). Guard check: Branin targets whose sources are
*negated* Branins (anti-correlated tasks), where warm starting can only hurt unless the guard drops them.

Both methods start from the same two Sobol points per target and seed, then propose one point at a
time with qLogNoisyExpectedImprovement: cold on the target's own SingleTaskGP, warm on a MultiTaskGP
with the sources (``transferline.process.warm_start.propose``). Score: evaluations (initial points
included) until the best value is within 5 % of the optimum, measured as 5 % of the gap between the
optimum and the task's median value over the domain; runs that never get there count as budget + 1.

Writes ``benchmarks/results/process_transfer_bo.json`` and ``.md``.
Usage: ``python benchmarks/process_transfer_bo.py [--seeds 0 1 2 3 4] [--budget 30]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import markdown_table  # noqa: E402

N_INIT, N_SOURCE, N_SOURCES = 2, 20, 3


def family(name: str):
    """(base function evaluating minimization values, search bounds [2, d], shift, a-range, b-range, optimum)."""
    from botorch.test_functions import Branin, Hartmann

    if name == "branin":
        f = Branin(bounds=[(-7.0, 12.0), (-2.0, 17.0)])
        return f, np.array([[-5.0, 0.0], [10.0, 15.0]]), 1.0, (0.5, 2.0), (-10.0, 10.0), 0.397887
    f = Hartmann(dim=3, bounds=[(-0.2, 1.2)] * 3)
    return f, np.array([[0.0] * 3, [1.0] * 3]), 0.1, (0.5, 2.0), (-1.0, 1.0), -3.86278


def make_task(name: str, rng: np.random.Generator, negate: bool = False):
    """One task of a family: ``(objective to maximize, bounds, f_opt in minimization units, gap)``."""
    base, bounds, shift_max, a_range, b_range, f_star = family(name)
    shift = rng.uniform(-shift_max, shift_max, bounds.shape[1])
    a, b = rng.uniform(*a_range), rng.uniform(*b_range)
    sign = -1.0 if negate else 1.0

    def minimized(X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return sign * (a * base.evaluate_true(torch.as_tensor(np.asarray(X) - shift)).numpy() + b)

    probe = bounds[0] + torch.quasirandom.SobolEngine(bounds.shape[1], scramble=True, seed=7).draw(4096).double().numpy() \
        * (bounds[1] - bounds[0])
    values = minimized(probe)
    f_opt = a * f_star + b if not negate else float(values.min())
    return (lambda X: -minimized(X)), bounds, f_opt, float(np.median(values) - f_opt)


def sobol(bounds: np.ndarray, n: int, seed: int) -> np.ndarray:
    unit = torch.quasirandom.SobolEngine(bounds.shape[1], scramble=True, seed=seed).draw(n).double().numpy()
    return bounds[0] + unit * (bounds[1] - bounds[0])


def run_bo(objective, bounds, f_opt, gap, sources, budget: int, seed: int) -> dict:
    from transferline.process.warm_start import propose

    X = sobol(bounds, N_INIT, seed=1000 + seed)
    y = objective(X)
    threshold = -(f_opt + 0.05 * gap)  # in maximization units
    weights, models = None, []
    while y.max() < threshold and len(y) < budget:
        out = propose(X, y, bounds, sources=sources, seed=seed * 1000 + len(y))
        X, y = np.vstack([X, out["next"]]), np.concatenate([y, objective(out["next"])])
        weights, models = out["weights"], models + [out["model"]]
    reached = bool(y.max() >= threshold)
    return {"evals": len(y) if reached else budget + 1, "reached": reached, "final_weights": weights,
            "multi_task_steps": models.count("multi-task"), "steps": len(models)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--targets", type=int, default=4, help="target tasks per related family")
    parser.add_argument("--guard-targets", type=int, default=2, help="Branin targets with anti-correlated sources")
    args = parser.parse_args()
    started()
    torch.set_num_threads(1)  # NOTE: the same numbers whatever the core count (float sums differ by thread count)
    suite = [(f"{fam}-{i}", fam, False) for fam in ("branin", "hartmann3") for i in range(args.targets)]
    suite += [(f"branin-vs-negated-{i}", "branin", True) for i in range(args.guard_targets)]
    results: dict[str, dict[str, list[dict]]] = {}
    for t, (task_name, fam, anti) in enumerate(suite):
        rng = np.random.default_rng(100 + t)
        objective, bounds, f_opt, gap = make_task(fam, rng)
        sources = []
        for k in range(N_SOURCES):
            source_objective, *_ = make_task(fam, rng, negate=anti)
            X = sobol(bounds, N_SOURCE, seed=10 * t + k)
            from transferline.process.warm_start import SourceTask

            sources.append(SourceTask(f"source-{k}", X, source_objective(X)))
        results[task_name] = {"cold": [], "warm": []}
        for seed in args.seeds:
            for method in ("cold", "warm"):
                t0 = time.perf_counter()
                run = run_bo(objective, bounds, f_opt, gap, sources if method == "warm" else [], args.budget, seed)
                run.update(seed=seed, seconds=time.perf_counter() - t0)
                results[task_name][method].append(run)
            c, w = results[task_name]["cold"][-1], results[task_name]["warm"][-1]
            print(f"{task_name:22s} seed {seed}: cold {c['evals']:3d}  warm {w['evals']:3d}  "
                  f"({c['seconds']:.0f} s / {w['seconds']:.0f} s)", flush=True)

    def saved(task: str) -> list[float]:
        return [(c["evals"] - w["evals"]) / c["evals"] for c, w in zip(results[task]["cold"], results[task]["warm"])]

    related = [name for name, _, anti in suite if not anti]
    per_task = {}
    for name in results:
        cold = statistics.median(r["evals"] for r in results[name]["cold"])
        warm = statistics.median(r["evals"] for r in results[name]["warm"])
        per_task[name] = {"cold_evals": spread([r["evals"] for r in results[name]["cold"]]),
                          "warm_evals": spread([r["evals"] for r in results[name]["warm"]]),
                          "saved_fraction": spread(saved(name)), "warm_over_cold": warm / cold,
                          "cold_reached": sum(r["reached"] for r in results[name]["cold"]),
                          "warm_reached": sum(r["reached"] for r in results[name]["warm"])}
    fractions = [f for name in related for f in saved(name)]
    worst = max(per_task[name]["warm_over_cold"] for name in results)
    summary = {"evals_saved_fraction": statistics.median(fractions),
               "evals_saved_fraction_all_tasks": statistics.median(f for name in results for f in saved(name)),
               "target_evals_saved_fraction": 0.40,
               "worst_task_warm_over_cold": worst, "target_worst_task_warm_over_cold": 1.10,
               "related_tasks": len(related), "guard_tasks": len(results) - len(related), "seeds": len(args.seeds)}
    rows = []
    for name, p in per_task.items():
        last = [r["final_weights"] for r in results[name]["warm"] if r["final_weights"]]
        kept = statistics.fmean(sum(w["kept"] for w in ws.values()) for ws in last) if last else float("nan")
        rows.append([name, f"{p['cold_evals']['median']:.0f} [{p['cold_evals']['min']:.0f}-{p['cold_evals']['max']:.0f}]",
                     f"{p['warm_evals']['median']:.0f} [{p['warm_evals']['min']:.0f}-{p['warm_evals']['max']:.0f}]",
                     f"{p['saved_fraction']['median']:+.2f}", f"{p['warm_over_cold']:.2f}", f"{kept:.1f} of {N_SOURCES}"])
    table = (f"Evaluations until within 5 % of the optimum (median [min-max] over {len(args.seeds)} seeds; budget "
             f"{args.budget}, never reached = {args.budget + 1}); {N_SOURCES} source tasks x {N_SOURCE} experiments each. "
             f"Median share of evaluations saved on the related tasks: {summary['evals_saved_fraction']:.2f} (target "
             f"≥ 0.40); worst task, median warm / median cold: {worst:.2f} (target ≤ 1.10).\n\n"
             + markdown_table(["target task", "cold start", "warm start", "saved (median)", "warm / cold",
                               "sources kept at the end"], rows))
    config = {"seeds": args.seeds, "budget": args.budget, "n_init": N_INIT, "sources": N_SOURCES,
              "source_experiments": N_SOURCE, "targets_per_family": args.targets, "guard_targets": args.guard_targets,
              "acquisition": "qLogNoisyExpectedImprovement (BoTorch), q=1",
              "warm": "MultiTaskGP over target + kept sources; sources kept when they rank the target's observations "
                      "with accuracy >= 0.6 (re-judged at every step)"}
    write_results("process_transfer_bo", config, summary, {"per_task": per_task, "runs": results}, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
