"""`transferline process fit` and `transferline optimize`."""

from __future__ import annotations

import argparse
import json
import sys

OPTIMIZE_EPILOG = """example:
  transferline optimize --model cnc-quality --bounds feedrate=3:20 clamp_pressure=2.5:4 \\
      --objective max:feedrate --constraint passed_visual_inspection>=0.9 --top 5 --next 2

Probabilities are shares of the surrogate's ensemble members; intervals are 90 % (for a binary
outcome: of its probability). Bounds outside the fitted data are allowed, with a warning."""


def add_parsers(sub) -> None:
    from .._ray import add_ray_arguments

    process = sub.add_parser("process", help="quality surrogates: set-points → outcomes, per run")
    psub = process.add_subparsers(dest="action", required=True)
    fit = psub.add_parser("fit", help="fit a surrogate on a dataset's runs, score it leave-one-run-out, write a run "
                                      "folder for `models register`")
    fit.add_argument("--dataset", required=True, help="a runs dataset ingested with its run table (set-points, outcomes)")
    fit.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    fit.add_argument("--setpoints", help="comma-separated set-point columns (default: the dataset's setpoints role)")
    fit.add_argument("--outcomes", help="comma-separated outcome columns (default: the dataset's outcomes role)")
    fit.add_argument("--context", help="comma-separated known conditions of each run that optimization does not "
                                       "choose (e.g. tool_condition): inputs beside the set-points, given to optimize")
    fit.add_argument("--positive", nargs="*", default=[], metavar="OUTCOME=VALUE",
                     help="the value a binary outcome counts as 1 (default: yes-like values, else 'worn' beside 'unworn')")
    fit.add_argument("--members", type=int, default=16, help="ensemble members (default 16)")
    fit.add_argument("--hidden", type=int, default=16, help="hidden units per layer (default 16)")
    fit.add_argument("--epochs", type=int, default=300, help="full-batch training steps per member (default 300)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--no-eval", action="store_true", help="skip the leave-one-run-out evaluation")
    fit.add_argument("--compare-signals", nargs="*", choices=["scratch", "tool_wear"], metavar="ENCODER",
                     help="also score set-points plus features of each run's first seconds of signals (an encoder "
                          "pretrained on the tool-wear task per fold: tool_wear; at random init: scratch); the model "
                          "written stays on set-points, which is what recommendation can vary")
    fit.add_argument("--signal-steps", type=int, default=120, help="with --compare-signals: rows per run (default 120)")
    fit.add_argument("--signal-phase", default="Layer 1",
                     help="with --compare-signals: count rows from where the phase column starts with this (default "
                          "'Layer 1'; '' for the run's start)")
    add_ray_arguments(fit, "Ray Train (folds and ensemble members shared out among workers)",
                      "fit with N Ray Train workers (default: in this process)")
    fit.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME, else "
                                                      "./transferline-data)")

    opt = sub.add_parser("optimize", help="recommend set-points from a registered surrogate (and the next experiments)",
                         epilog=OPTIMIZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    opt.add_argument("--model", required=True, help="a registered surrogate: name, name@3 or name@production")
    opt.add_argument("--bounds", nargs="*", default=[], metavar="NAME=LOW:HIGH",
                     help="search box per set-point (default: the fitted data's range)")
    opt.add_argument("--objective", required=True, help="max:NAME or min:NAME, NAME a set-point or an outcome")
    opt.add_argument("--constraint", nargs="*", default=[], metavar="OUTCOME>=VALUE",
                     help="outcome bounds, e.g. passed_visual_inspection>=0.9 (>=, <=, >, <)")
    opt.add_argument("--min-probability", type=float, default=0.8,
                     help="how sure a recommendation must be to meet every constraint (default 0.8)")
    opt.add_argument("--top", type=int, default=5, help="how many set-points to recommend (default 5)")
    opt.add_argument("--context", nargs="*", default=[], metavar="NAME=VALUE",
                     help="the value of each context input the surrogate takes, e.g. tool_condition=unworn")
    opt.add_argument("--current", nargs="*", default=[], metavar="NAME=VALUE",
                     help="today's set-points, the reference for expected improvement (default: the best observed "
                          "run that met the constraints)")
    opt.add_argument("--next", type=int, default=0, metavar="Q",
                     help="also propose the next Q experiments (batch Bayesian optimization, BoTorch)")
    opt.add_argument("--warm-start", nargs="*", default=[], metavar="MODEL",
                     help="with --next: other machines' registered surrogates whose experiments warm-start the next "
                          "ones (multi-task GPs; each source's weight is printed)")
    opt.add_argument("--seed", type=int, default=0, help="random seed of the candidate design (default 0)")
    opt.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    opt.add_argument("--models", metavar="DIR", dest="models_root",
                     help="model registry directory (default: $TRANSFERLINE_MODELS, else ./transferline-models)")


def _bounds(words: list[str]) -> dict[str, tuple[float, float]]:
    from .recommend import RecommendError

    out = {}
    for word in words:
        name, _, span = word.partition("=")
        lo, sep, hi = span.partition(":")
        try:
            out[name] = (float(lo), float(hi))
        except ValueError:
            raise RecommendError("bounds", f"{word!r}: expected NAME=LOW:HIGH with numbers") from None
    return out


def _pairs(words: list[str], flag: str) -> dict[str, str]:
    from ..errors import TransferlineError

    out = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name or not value:
            raise TransferlineError(f"{flag} {word!r}: expected NAME=VALUE")
        out[name] = value
    return out


def run_process(args) -> int:
    from ..catalog import Catalog
    from . import SurrogateConfig, baseline_metrics, fit_surrogate, leave_one_run_out, load_process_data, outcome_metrics
    from .store import save_surrogate

    split = lambda text: [s.strip() for s in text.split(",") if s.strip()] if text else None  # noqa: E731
    data = load_process_data(Catalog(args.catalog), args.dataset, setpoints=split(args.setpoints),
                             outcomes=split(args.outcomes), positive=_pairs(args.positive, "--positive"),
                             context=split(args.context))
    config = SurrogateConfig(members=args.members, hidden=args.hidden, epochs=args.epochs, seed=args.seed)
    describe = lambda items: ", ".join(f"{o.name} ({o.kind}{f', 1 = {o.positive}' if o.positive else ''})"  # noqa: E731
                                       for o in items)
    print(f"{args.dataset}: {len(data.runs)} runs; set-points {', '.join(data.setpoints)}; "
          + (f"context {describe(data.context)}; " if data.context else "") + f"outcomes {describe(data.outcomes)}")
    metrics, held_out = {}, None
    if args.workers:
        from .ray_fit import fit_on_ray

        model, held_out, ray_info = fit_on_ray(data, config, workers=args.workers, address=args.address,
                                               cpus_per_worker=args.cpus_per_worker, evaluate=not args.no_eval)
        metrics["ray"] = ray_info
    elif not args.no_eval:
        from tqdm import tqdm

        with tqdm(total=len(data.runs), desc="leave-one-run-out", disable=not sys.stderr.isatty()) as bar:
            held_out = leave_one_run_out(data, config, progress=lambda i: bar.update(1))["predictions"]
    if held_out is not None:
        metrics.update(loeo=outcome_metrics(data, held_out), baselines=baseline_metrics(data))
        print(_table(metrics))
    if args.compare_signals:
        metrics["with_signals"] = _with_signals(args, data, config)
    if not args.workers:
        model = fit_surrogate(data, config)
    out = save_surrogate(args.out, model, data, config, metrics)
    print(f"wrote {out} (register it: transferline models register {out} --name NAME)")
    return 0


def _with_signals(args, data, config) -> dict:
    """Leave-one-run-out scores of set-points plus signal features, per encoder asked for."""
    from ..catalog import Catalog
    from .evaluate import baseline_metrics, leave_one_run_out
    from .features import SignalFeatures, fold_features, run_windows

    out = {}
    for pretrain in args.compare_signals:
        spec = SignalFeatures(steps=args.signal_steps, phase=args.signal_phase or None, pretrain=pretrain,
                              seed=args.seed)
        windows = run_windows(Catalog(args.catalog), data, spec)
        held = leave_one_run_out(data, config, features=lambda train: fold_features(windows, data, train, spec))
        out[pretrain] = held["metrics"]
        print(f"set-points + first {spec.steps} steps of signals ({pretrain} encoder):")
        print(_table({"loeo": held["metrics"], "baselines": baseline_metrics(data)}))
    return out


def _table(metrics: dict) -> str:
    rows = [f"{'outcome':28s} {'runs':>4s} {'AUROC':>6s} {'Brier':>6s} {'cov90':>6s}   logistic AUROC/Brier"]
    for name, m in metrics["loeo"].items():
        base = metrics["baselines"]["logistic"][name]
        fmt = lambda v: f"{v:6.3f}" if isinstance(v, float) else f"{'-':>6s}"  # noqa: E731
        rows.append(f"{name:28s} {m['runs']:4d} {fmt(m.get('auroc'))} {fmt(m.get('brier', m.get('rmse')))} "
                    f"{fmt(m['coverage_90'])}   {fmt(base.get('auroc'))}/{fmt(base.get('brier', base.get('rmse')))}")
    return "\n".join(rows)


def _numbers(pairs: dict[str, str], field: str) -> dict[str, float]:
    from .recommend import RecommendError

    try:
        return {k: float(v) for k, v in pairs.items()}
    except ValueError:
        raise RecommendError(field, f"expected NAME=NUMBER, got {pairs}") from None


def run_optimize(args) -> int:
    from ..errors import TransferlineError
    from ..model_registry import ModelRegistry
    from .recommend import answer_for
    from .store import load_surrogate

    registry = ModelRegistry(args.models_root)
    entry = registry.get(args.model)
    if entry.task.get("name") != "process_outcome":
        raise TransferlineError(f"model {entry.ref} is a {entry.task.get('name')} model, not a process surrogate "
                                "(fit one with `transferline process fit`)")
    registry.verify(entry)
    model, meta = load_surrogate(registry.path(entry.name, entry.version))
    sources = {}
    for ref in args.warm_start:
        other = registry.get(ref)
        if other.task.get("name") != "process_outcome":
            raise TransferlineError(f"--warm-start {ref}: not a process surrogate")
        registry.verify(other)
        sources[other.ref] = load_surrogate(registry.path(other.name, other.version))[1]
    answer = answer_for(model, meta, bounds=_bounds(args.bounds), objective=args.objective, constraints=args.constraint,
                        min_probability=args.min_probability, top=args.top,
                        current=_numbers(_pairs(args.current, "--current"), "current"),
                        next_q=args.next, seed=args.seed, warm_start=sources or None,
                        context=_pairs(args.context, "--context"))
    answer = {"model": entry.ref, **answer}
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(render(answer))
    return 0 if answer["feasible"] else 1


def render(answer: dict) -> str:
    lines = [f"warning: {w}" for w in answer["warnings"]]
    goal = f"{answer['objective'][0]} {answer['objective'][1]}"
    cons = " and ".join(answer["constraints"]) or "no constraints"
    context = "".join(f", {k}={v}" for k, v in (answer.get("context") or {}).items())
    lines.append(f"{answer['model']}: {goal} subject to {cons} (P ≥ {answer['min_probability']:g}{context}), "
                 f"{answer['candidates']} candidates within " + ", ".join(f"{k} {lo:g}:{hi:g}" for k, (lo, hi) in answer["bounds"].items()))
    ref = answer["reference"]
    if ref["objective"] is not None:
        lines.append(f"reference ({ref['from']}): {answer['objective'][1]} {ref['objective']:.4g}")
    if not answer["feasible"]:
        lines.append(answer["message"])
    for rank, row in enumerate(answer["recommendations"], 1):
        sp = ", ".join(f"{k}={v:.4g}" for k, v in row["setpoints"].items())
        ei = f"{row['expected_improvement']:.3g}" if row["expected_improvement"] is not None else "-"
        lines.append(f"{rank}. {sp}   P(constraints) {row['p_constraints']:.2f}   expected improvement {ei}")
        for name, o in row["outcomes"].items():
            lo, hi = o["interval_90"]
            lines.append(f"     {o.get('of', name):40s} {o['mean']:.3f}  [{lo:.3f}, {hi:.3f}]")
    for i, x in enumerate(answer.get("next", []), 1):
        lines.append(f"next experiment {i}: " + ", ".join(f"{k}={v:.4g}" for k, v in x.items()))
    for outcome, weights in (answer.get("warm_start") or {}).items():
        lines.append(f"warm start, {outcome}: " + "; ".join(
            f"{src} {'kept' if w['kept'] else 'left out'}"
            + (f", ranks this machine's runs {w['ranking']:.2f}" if w["ranking"] is not None else "")
            + (f", task correlation {w['correlation']:.2f}" if w["correlation"] is not None else "")
            for src, w in weights.items()))
    return "\n".join(lines)
