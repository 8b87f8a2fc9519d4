"""Set-point recommendation from a quality surrogate: the best set-points within bounds that meet
every constraint with enough probability, and the next experiment to run (BoTorch).

``objective`` maximizes or minimizes a set-point (throughput: ``max:feedrate``) or an outcome;
``constraints`` bound outcomes (``passed_visual_inspection>=0.9``: the predicted probability of
passing, or a numeric outcome's value). Probabilities are shares of ensemble members: a candidate
meets the constraints with probability 0.8 when 80 % of the members predict it does.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import TransferlineError
from .surrogate import summarize
from .table import Outcome

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(>=|<=|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")


class RecommendError(TransferlineError):
    """A recommendation that cannot be asked: unknown variables, empty bounds, a malformed constraint.
    ``field`` names the request field (``bounds``, ``objective``, ``constraints``, ``current``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Problem:
    """What to optimize over a surrogate with inputs ``setpoints`` and ``outcomes``."""

    setpoints: list[str]
    outcomes: list[Outcome]
    bounds: dict[str, tuple[float, float]]
    objective: tuple[str, str]  # ("max" | "min", variable)
    constraints: list[tuple[str, str, float]] = field(default_factory=list)
    min_probability: float = 0.8
    context: dict[str, float] = field(default_factory=dict)  # fixed inputs after the set-points, encoded

    def full(self, X: np.ndarray) -> np.ndarray:
        """Set-point rows ``[n, d]`` with the context appended: the surrogate's inputs."""
        fixed = np.repeat(np.array([list(self.context.values())], float), len(X), axis=0)
        return np.column_stack([X, fixed]) if self.context else np.asarray(X, float)

    def same_context(self, X: np.ndarray) -> np.ndarray:
        """Which observed input rows were run in this problem's context."""
        ok = np.ones(len(X), dtype=bool)
        for i, value in enumerate(self.context.values()):
            ok &= X[:, len(self.setpoints) + i] == value
        return ok

    @classmethod
    def parse(cls, setpoints: list[str], outcomes: list[Outcome], ranges: dict[str, list[float]], *,
              bounds: dict[str, tuple[float, float]] | None, objective: str, constraints: list[str] | None = None,
              min_probability: float = 0.8, context_spec: list[Outcome] = (),
              context: dict[str, str | float] | None = None) -> "Problem":
        """``bounds`` per set-point (those not given range over the data), ``objective`` ``max:NAME`` or
        ``min:NAME``, ``constraints`` like ``passed_visual_inspection>=0.9``; ``context`` the value of
        every context input the surrogate takes (``context_spec``), e.g. ``{"tool_condition": "unworn"}``."""
        names = [o.name for o in outcomes]
        fixed = _context_values(context_spec, context or {})
        given = {}
        for name, span in (bounds or {}).items():
            if name not in setpoints:
                raise RecommendError("bounds", f"{name!r} is not a set-point of this model (set-points: "
                                               f"{', '.join(setpoints)})")
            if len(span) != 2 or not all(np.isfinite(v) for v in span):
                raise RecommendError("bounds", f"{name}: expected two finite numbers, low and high")
            low, high = (float(v) for v in span)
            if not low <= high:
                raise RecommendError("bounds", f"{name}: the low end {low:g} exceeds the high end {high:g}")
            given[name] = (low, high)
        full = {name: given.get(name, tuple(ranges[name])) for name in setpoints}
        direction, _, variable = objective.partition(":")
        if direction not in ("max", "min") or variable not in setpoints + names:
            raise RecommendError("objective", f"{objective!r}: expected max:NAME or min:NAME with NAME a set-point "
                                              f"({', '.join(setpoints)}) or an outcome ({', '.join(names)})")
        parsed = []
        for text in constraints or []:
            match = _CONSTRAINT.match(text)
            if not match or match.group(1) not in names:
                raise RecommendError("constraints", f"{text!r}: expected OUTCOME>=NUMBER (or <=, >, <) with OUTCOME "
                                                    f"one of {', '.join(names)}")
            parsed.append((match.group(1), match.group(2), float(match.group(3))))
        if not 0 < min_probability <= 1:
            raise RecommendError("min_probability", "a number in (0, 1]")
        return cls(setpoints, outcomes, full, (direction, variable), parsed, min_probability, fixed)

    def warnings(self, ranges: dict[str, list[float]]) -> list[str]:
        """Bounds reaching outside the data the surrogate was fitted on: extrapolation."""
        out = []
        for name, (lo, hi) in self.bounds.items():
            dlo, dhi = ranges[name]
            if lo < dlo or hi > dhi:
                out.append(f"{name}: bounds {lo:g}:{hi:g} reach outside the fitted data ({dlo:g}:{dhi:g}); predictions "
                           "there are extrapolations")
        return out

    def objective_values(self, X: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The objective per candidate and member ``[n, members]``, signed so that larger is better."""
        direction, name = self.objective
        if name in self.setpoints:
            f = np.repeat(X[:, self.setpoints.index(name)][:, None], values.shape[1], axis=1)
        else:
            f = values[:, :, [o.name for o in self.outcomes].index(name)]
        return f if direction == "max" else -f

    def feasible(self, values: np.ndarray) -> np.ndarray:
        """Whether each member meets every constraint at each candidate, ``[n, members]``."""
        names = [o.name for o in self.outcomes]
        ok = np.ones(values.shape[:2], dtype=bool)
        for name, op, bound in self.constraints:
            ok &= _OPS[op](values[:, :, names.index(name)], bound)
        return ok


def _context_values(spec: list[Outcome], given: dict) -> dict[str, float]:
    """The encoded value of every context input; a clear error for a missing, unknown or bad one."""
    names = [c.name for c in spec]
    unknown = [k for k in given if k not in names]
    if unknown:
        raise RecommendError("context", f"{unknown[0]!r} is not a context input of this model (context: "
                                        f"{', '.join(names) or 'none'})")
    out = {}
    for c in spec:
        if c.name not in given:
            choices = f"{c.positive} or {c.negative}" if c.kind == "binary" else "a number"
            raise RecommendError("context", f"this model also takes {c.name} ({choices}): say which holds")
        value = given[c.name]
        if c.kind == "binary":
            if str(value) not in (c.positive, c.negative, "0", "1", "0.0", "1.0"):
                raise RecommendError("context", f"{c.name}: {value!r} is neither {c.positive!r} nor {c.negative!r}")
            out[c.name] = 1.0 if str(value) in (c.positive, "1", "1.0") else 0.0
        else:
            try:
                out[c.name] = float(value)
            except (TypeError, ValueError):
                out[c.name] = float("nan")
            if not np.isfinite(out[c.name]):
                raise RecommendError("context", f"{c.name}: a finite number, not {value!r}")
    return out


MAX_CORNER_DIMS = 8


def candidates(problem: Problem, n: int = 2048, seed: int = 0) -> np.ndarray:
    """A scrambled Sobol design over the bounds plus, for up to ``MAX_CORNER_DIMS`` set-points, every
    corner of the box (optima sit there often)."""
    lo = np.array([problem.bounds[s][0] for s in problem.setpoints])
    hi = np.array([problem.bounds[s][1] for s in problem.setpoints])
    unit = torch.quasirandom.SobolEngine(len(lo), scramble=True, seed=seed).draw(n).double().numpy()
    if len(lo) > MAX_CORNER_DIMS:  # 2^d corners: a few hundred at most
        return lo + unit * (hi - lo)
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * len(lo))).reshape(len(lo), -1).T
    return lo + np.concatenate([corners, unit]) * (hi - lo)


def recommend(members_of, problem: Problem, *, observed_X: np.ndarray, observed_Y: np.ndarray,
              current: dict[str, float] | None = None, top: int = 5, n_candidates: int = 2048, seed: int = 0) -> dict:
    """The ``top`` set-points: feasible with probability ≥ ``min_probability``, best expected
    objective first, mutually distinct (≥ 5 % of the box apart). ``members_of(X)`` returns the
    surrogate's members ``[n, members, k, 2]``. The reference for expected improvement is
    ``current`` if given, else the best observed run that met every constraint."""
    X = candidates(problem, n_candidates, seed)
    members = members_of(problem.full(X))
    values = members[..., 0]
    f, ok = problem.objective_values(X, values), problem.feasible(values)
    p_feasible = ok.mean(axis=1)
    reference, ref_from = _reference(problem, observed_X, observed_Y, current, members_of)
    ei = (np.maximum(f - reference, 0.0) * ok).mean(axis=1) if reference is not None else np.full(len(X), np.nan)
    expected = f.mean(axis=1)
    summary = summarize(members, problem.outcomes)
    meets = p_feasible >= problem.min_probability
    order = np.lexsort((-p_feasible, -expected))
    chosen = _distinct(X, order[meets[order]], problem, top)
    rows = [_row(X[i], problem, summary, i, p_feasible[i], ei[i], expected[i]) for i in chosen]
    answer = {"feasible": bool(meets.any()), "recommendations": rows, "reference": reference_dict(reference, ref_from, problem),
              "objective": list(problem.objective), "constraints": [f"{n}{o}{b:g}" for n, o, b in problem.constraints],
              "min_probability": problem.min_probability, "candidates": len(X)}
    if not meets.any():
        best = int(np.argmax(p_feasible))
        answer["closest"] = _row(X[best], problem, summary, best, p_feasible[best], ei[best], expected[best])
        answer["message"] = (f"no set-point within the bounds meets {' and '.join(answer['constraints'])} with probability "
                             f"≥ {problem.min_probability:g}; the closest reaches {p_feasible[best]:.2f} at "
                             + ", ".join(f"{s}={v:.4g}" for s, v in zip(problem.setpoints, X[best])))
    return answer


def _reference(problem, observed_X, observed_Y, current, members_of):
    direction, name = problem.objective
    sign = 1.0 if direction == "max" else -1.0
    if current:
        missing = [s for s in problem.setpoints if s not in current]
        unknown = [s for s in current if s not in problem.setpoints]
        if missing or unknown:
            raise RecommendError("current", f"needs every set-point and only those ({', '.join(problem.setpoints)}); "
                                            + (f"missing {', '.join(missing)}" if missing else f"unknown {unknown[0]!r}"))
        if not all(np.isfinite(v) for v in current.values()):
            raise RecommendError("current", "values must be finite numbers")
        x = np.array([[current[s] for s in problem.setpoints]])
        return float(problem.objective_values(x, members_of(problem.full(x))[..., 0]).mean()), "current"
    names = [o.name for o in problem.outcomes]
    ok = problem.same_context(observed_X)
    for cname, op, bound in problem.constraints:
        col = observed_Y[:, names.index(cname)]
        ok &= ~np.isnan(col) & _OPS[op](np.nan_to_num(col, nan=-np.inf if op in (">=", ">") else np.inf), bound)
    if name in problem.setpoints:
        f = sign * observed_X[:, problem.setpoints.index(name)]
    else:
        f = sign * observed_Y[:, names.index(name)]
    ok &= ~np.isnan(f)
    if not ok.any():
        return None, "none"
    return float(f[ok].max()), "best observed run meeting the constraints"


def reference_dict(reference, source, problem) -> dict:
    direction = problem.objective[0]
    value = None if reference is None else (reference if direction == "max" else -reference)
    return {"objective": value, "from": source}


def _distinct(X, order, problem, top) -> list[int]:
    span = np.array([max(problem.bounds[s][1] - problem.bounds[s][0], 1e-12) for s in problem.setpoints])
    chosen = []
    for i in order:
        if all(np.max(np.abs(X[i] - X[j]) / span) >= 0.05 for j in chosen):
            chosen.append(int(i))
        if len(chosen) == top:
            break
    return chosen


def _row(x, problem, summary, i, p_feasible, ei, expected) -> dict:
    direction = problem.objective[0]
    return {"setpoints": {s: float(v) for s, v in zip(problem.setpoints, x)},
            "outcomes": {o.name: {"mean": float(summary["mean"][i, j]), "interval_90": [float(summary["lo"][i, j]),
                                                                                    float(summary["hi"][i, j])],
                                  **({"of": f"P({o.name}={o.positive})"} if o.kind == "binary" else {})}
                         for j, o in enumerate(problem.outcomes)},
            "p_constraints": float(p_feasible),
            "objective": float(expected if direction == "max" else -expected),
            "expected_improvement": None if np.isnan(ei) else float(ei)}


def answer_for(model, meta: dict, *, bounds, objective, constraints, min_probability=0.8, top=5, current=None,
               next_q=0, seed=0, warm_start: dict[str, dict] | None = None, context: dict | None = None) -> dict:
    """The whole recommendation (used by the CLI and the server alike); ``warm_start`` (model name →
    ``model.json`` of other machines' surrogates) warm-starts the next experiments."""
    from .store import observed, outcomes_of
    from .surrogate import predict

    if not 1 <= top <= 100:
        raise RecommendError("top", "between 1 and 100")
    if not 0 <= next_q <= 8:
        raise RecommendError("next", "between 0 and 8 experiments")

    outcomes = outcomes_of(meta)
    problem = Problem.parse(meta["setpoints"], outcomes, meta["ranges"], bounds=bounds, objective=objective,
                            constraints=constraints, min_probability=min_probability,
                            context_spec=outcomes_of(meta, "context"), context=context)
    X, Y = observed(meta)
    answer = recommend(lambda x: predict(model, x), problem, observed_X=X, observed_Y=Y, current=current or None,
                       top=top, seed=seed)
    answer["warnings"] = problem.warnings(meta["ranges"])
    if problem.context:
        answer["context"] = {k: (context or {})[k] for k in problem.context}
    answer["bounds"] = {k: list(v) for k, v in problem.bounds.items()}
    if warm_start and not next_q:
        raise RecommendError("warm_start", "warm starting picks the next experiments: ask for them (next >= 1)")
    if next_q:
        answer.update(warm_next_experiments(problem, meta, warm_start, q=next_q, seed=seed) if warm_start
                      else next_experiments(model, problem, X, q=next_q, seed=seed))
    return answer


def next_experiments(module: torch.nn.Module, problem: Problem, observed_X: np.ndarray, *, q: int = 1,
                     seed: int = 0) -> dict:
    """The next ``q`` experiments by constrained batch Bayesian optimization: BoTorch's
    qLogNoisyExpectedImprovement on the ensemble (each member one posterior sample), with the
    constraints as feasibility weights, maximized by ``optimize_acqf`` within the bounds."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.optim import optimize_acqf

    model = surrogate_model(module, len(problem.outcomes))
    names = [o.name for o in problem.outcomes]
    objective = _objective(problem, names)
    constraints = [_constraint(names.index(n), op, b) for n, op, b in problem.constraints]
    lo = [problem.bounds[s][0] for s in problem.setpoints] + list(problem.context.values())
    hi = [problem.bounds[s][1] for s in problem.setpoints] + list(problem.context.values())
    bounds = torch.tensor([lo, hi], dtype=torch.float32)
    d = len(problem.setpoints)
    fixed = {d + i: v for i, v in enumerate(problem.context.values())} or None
    runs = observed_X[problem.same_context(observed_X)] if problem.context else observed_X
    if not len(runs):  # no run in this context yet: the set-points tried elsewhere, in this context
        runs = problem.full(observed_X[:, :d])
    baseline = torch.as_tensor(np.clip(runs, bounds[0].numpy(), bounds[1].numpy()), dtype=torch.float32)
    torch.manual_seed(seed)
    acq = qLogNoisyExpectedImprovement(model, X_baseline=baseline, objective=objective, constraints=constraints or None,
                                       prune_baseline=False, cache_root=False)
    X, value = optimize_acqf(acq, bounds=bounds, q=q, num_restarts=8, raw_samples=256, sequential=True,
                             fixed_features=fixed)
    return {"next": [{s: float(v) for s, v in zip(problem.setpoints, row[:d])} for row in X.detach().numpy()],
            "acquisition": "qLogNoisyExpectedImprovement (BoTorch)", "log_acquisition_value": float(value.sum())}


def warm_next_experiments(problem: Problem, meta: dict, sources: dict[str, dict], *, q: int = 1, seed: int = 0) -> dict:
    """The next ``q`` experiments on this machine, warm-started from other machines' experiments
    (``sources``: model name → that surrogate's ``model.json``): each outcome the objective or a
    constraint names gets a BoTorch ``MultiTaskGP`` over this machine's runs and every source's
    (a source that orders this machine's runs no better than chance is left out; see
    :mod:`~transferline.process.warm_start`), and qLogNoisyExpectedImprovement with the constraints
    as feasibility weights picks the points. Returns the points and, per outcome, each source's weight."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.models import ModelListGP
    from botorch.optim import optimize_acqf

    from .store import observed
    from .warm_start import SourceTask, _unit, scale_of, task_model

    names = [o.name for o in problem.outcomes]
    for source, other in sources.items():
        theirs = other["setpoints"] + [c["name"] for c in other.get("context") or []]
        if theirs != problem.setpoints + list(problem.context):
            raise RecommendError("warm_start", f"{source} takes inputs {theirs}, this model "
                                               f"{problem.setpoints + list(problem.context)}: warm starting needs the "
                                               "same ones")
    direction, variable = problem.objective
    modeled = list(dict.fromkeys([n for n, _, _ in problem.constraints] + ([variable] if variable in names else [])))
    if not modeled:
        raise RecommendError("warm_start", "nothing to warm-start: the objective is a set-point and there are no "
                                           "constraints on outcomes")
    d = len(problem.setpoints)
    spans = [problem.bounds[s] for s in problem.setpoints] + [
        (meta["ranges"][c][0], max(meta["ranges"][c][1], meta["ranges"][c][0] + 1.0)) for c in problem.context]
    bounds = np.array(spans, float).T  # [2, inputs]; context columns range over the data
    X, Y = observed(meta)
    models, weights, scales = [], {}, {}
    for name in modeled:
        j = names.index(name)
        seen = ~np.isnan(Y[:, j])
        tasks = []
        for source, other in sources.items():
            other_names = [o["name"] for o in other["outcomes"]]
            if name in other_names:
                Xs, Ys = observed(other)
                col = Ys[:, other_names.index(name)]
                tasks.append(SourceTask(source, Xs[~np.isnan(col)], col[~np.isnan(col)]))
        model, weights[name], _ = task_model(X[seen], Y[seen, j], bounds, tasks)
        models.append(model)
        scales[name] = scale_of(Y[seen, j])
    objective = _objective(problem, modeled)
    torch.manual_seed(seed)  # after the fits: the same samples whatever the guard kept
    constraints = []
    for name, op, bound in problem.constraints:
        mean, scale = scales[name]
        constraints.append(_constraint(modeled.index(name), op, (bound - mean) / scale))
    acq = qLogNoisyExpectedImprovement(ModelListGP(*models), X_baseline=_unit(np.clip(X, bounds[0], bounds[1]), bounds),
                                       objective=objective, constraints=constraints or None, prune_baseline=False,
                                       cache_root=False)
    box = torch.tensor([[0.0] * bounds.shape[1], [1.0] * bounds.shape[1]], dtype=torch.double)
    fixed = {d + i: (v - bounds[0, d + i]) / (bounds[1, d + i] - bounds[0, d + i])
             for i, v in enumerate(problem.context.values())} or None
    unit, value = optimize_acqf(acq, bounds=box, q=q, num_restarts=8, raw_samples=256, sequential=True,
                                fixed_features=fixed)
    points = bounds[0] + unit.detach().numpy() * (bounds[1] - bounds[0])
    return {"next": [{s: float(v) for s, v in zip(problem.setpoints, row[:d])} for row in points],
            "acquisition": "qLogNoisyExpectedImprovement on multi-task GPs warm-started from "
                           + ", ".join(sources) + " (BoTorch)",
            "log_acquisition_value": float(value.sum()), "warm_start": weights}


def _objective(problem: Problem, outputs: list[str]):
    """BoTorch's objective for ``problem``, larger is better: a set-point read from the inputs (any
    increasing rescaling of them will do) or the model output ``outputs`` names."""
    from botorch.acquisition.objective import GenericMCObjective

    direction, variable = problem.objective
    sign = 1.0 if direction == "max" else -1.0
    if variable in problem.setpoints:
        col = problem.setpoints.index(variable)
        return GenericMCObjective(lambda Z, X: sign * X[..., col].expand(Z.shape[:-1]))
    col = outputs.index(variable)
    return GenericMCObjective(lambda Z, X: sign * Z[..., col])


def _constraint(index: int, op: str, bound: float):
    """BoTorch's convention: a constraint is met where the callable is ≤ 0."""
    if op in (">=", ">"):
        return lambda Z: bound - Z[..., index]
    return lambda Z: Z[..., index] - bound


def surrogate_model(module: torch.nn.Module, k: int):
    """The surrogate (eager or exported) as a BoTorch ensemble model: ``batch x members x q x k``.
    (The class is made here so that BoTorch loads only when a proposal is asked for.)"""
    from botorch.models.ensemble import EnsembleModel

    class Surrogate(EnsembleModel):
        def __init__(self) -> None:
            super().__init__()
            self.module, self._num_outputs = module, k

        def forward(self, X):
            flat = self.module(X.reshape(-1, X.shape[-1]))[..., 0]  # [members, n, k]
            out = flat.reshape(flat.shape[0], *X.shape[:-1], flat.shape[-1])  # [members, ..., q, k]
            return out.movedim(0, -3)

    return Surrogate()
