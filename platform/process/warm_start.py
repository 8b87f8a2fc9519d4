"""Warm-started Bayesian optimization across machines: earlier tasks' experiments help choose the
next experiment on a new one.

The target task and every source task (another machine, material or product, with its own
experiments) share one BoTorch ``MultiTaskGP`` (intrinsic coregionalization: one kernel over the
inputs times a learned task covariance), and the next points maximize qLogNoisyExpectedImprovement
on the target task. Each task's outputs are standardized on their own, so sources may differ in
scale and offset. Negative transfer is guarded: once the target has a few observations, a source
is kept only if a GP fitted on it alone orders the target's observations better than chance (the
ranking idea of RGPE, Feurer et al., 2018); with no source kept, the model is the target's own
``SingleTaskGP`` (a cold start). The weight reported per source is its kept/left-out state, its
ranking accuracy on the target, and the task correlation the multi-task model learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_RANKING = 0.6  # share of the target's observation pairs a source must order correctly to be kept
SCREEN_FROM = 2  # target observations needed before sources are screened (one pair: re-judged every step)


@dataclass
class SourceTask:
    """An earlier task's experiments: inputs ``X`` ``[n, d]`` (same variables and units as the
    target's) and the objective ``y`` ``[n]`` (larger is better)."""

    name: str
    X: np.ndarray
    y: np.ndarray


def _unit(X: np.ndarray, bounds: np.ndarray) -> torch.Tensor:
    return torch.as_tensor((np.asarray(X, float) - bounds[0]) / (bounds[1] - bounds[0]), dtype=torch.double)


def scale_of(y: np.ndarray) -> tuple[float, float]:
    """The mean and scale a task's outputs are standardized with (scale 1 for one or equal values)."""
    y = np.asarray(y, float)
    return float(y.mean()), float(y.std()) if len(y) > 1 and y.std() > 1e-12 else 1.0


def _standard(y: np.ndarray) -> np.ndarray:
    mean, scale = scale_of(y)
    return (np.asarray(y, float) - mean) / scale


def _fit(model):
    """Fits the GP's hyperparameters by L-BFGS on the marginal likelihood.

    # NOTE: capped at 1,000 iterations. Uncapped, the multi-task likelihood of 62 points ran to
    # L-BFGS's 5,000 (30 s) and kept creeping up (log marginal likelihood per point 0.57 after 200,
    # 1.02 after 1,000, 1.14 after 5,000 in one check). At 200 the warm start was measured first
    # (benchmarks/results/process_transfer_bo.json at 110c209: 0.34 of evaluations saved, worst task
    # 1.25); its proposals kept landing on the box's edges, as from a poorly fitted model.
    """
    import warnings

    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notices that the optimizer stopped at its iteration cap
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                         optimizer_kwargs={"options": {"maxiter": 1000}})
    return model


def ranking_accuracy(source: SourceTask, X: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> float:
    """The share of pairs of target observations whose order a GP fitted on ``source`` predicts."""
    from botorch.models import SingleTaskGP

    model = _fit(SingleTaskGP(_unit(source.X, bounds), torch.as_tensor(_standard(source.y))[:, None]))
    with torch.no_grad():
        pred = model.posterior(_unit(X, bounds)).mean.squeeze(-1).numpy()
    i, j = np.triu_indices(len(y), k=1)
    differ = y[i] != y[j]
    if not differ.any():
        return 0.5
    return float(np.mean((np.sign(pred[i] - pred[j]) == np.sign(y[i] - y[j]))[differ]))


def task_model(X: np.ndarray, y: np.ndarray, bounds: np.ndarray, sources: list[SourceTask] = (), *,
               guard: bool = True):
    """The target's GP in the unit box: a ``MultiTaskGP`` with the kept sources (the target is task
    0) or, with none kept, its own ``SingleTaskGP``. Returns ``(model, weights, task_column)``:
    ``task_column`` is the index of the task input (None for a single-task model)."""
    from botorch.models import MultiTaskGP, SingleTaskGP

    X, y = np.asarray(X, float), np.asarray(y, float)
    weights = {s.name: {"kept": True, "ranking": None, "correlation": None} for s in sources}
    kept = list(sources)
    if guard and sources and len(y) >= SCREEN_FROM:
        kept = []
        for s in sources:
            r = ranking_accuracy(s, X, y, bounds)
            weights[s.name].update(ranking=r, kept=r >= MIN_RANKING)
            if r >= MIN_RANKING:
                kept.append(s)
    target_x = _unit(X, bounds)
    if not kept:
        for w in weights.values():
            w["kept"] = False
        return _fit(SingleTaskGP(target_x, torch.as_tensor(_standard(y))[:, None])), weights, None
    tasks = [np.zeros(len(y))] + [np.full(len(s.y), i + 1) for i, s in enumerate(kept)]
    xs = np.concatenate([target_x.numpy(), *[_unit(s.X, bounds).numpy() for s in kept]])
    ys = np.concatenate([_standard(y), *[_standard(s.y) for s in kept]])
    train_x = torch.as_tensor(np.column_stack([xs, np.concatenate(tasks)]), dtype=torch.double)
    model = _fit(MultiTaskGP(train_x, torch.as_tensor(ys)[:, None], task_feature=-1, output_tasks=[0]))
    with torch.no_grad():
        cov = model.covar_module.kernels[1].covar_matrix.to_dense().numpy()
    for i, s in enumerate(kept, start=1):
        weights[s.name]["correlation"] = float(cov[0, i] / np.sqrt(cov[0, 0] * cov[i, i]))
    return model, weights, target_x.shape[1]


def propose(X: np.ndarray, y: np.ndarray, bounds: np.ndarray, *, sources: list[SourceTask] = (), q: int = 1,
            seed: int = 0, guard: bool = True, num_restarts: int = 6, raw_samples: int = 128) -> dict:
    """The next ``q`` points for the target (observations ``X``, ``y``; larger ``y`` is better)
    within ``bounds`` ``[2, d]``, warm-started from ``sources``. Returns ``{"next": [q, d],
    "weights": {source: {"kept", "ranking", "correlation"}}, "model": "multi-task" | "single-task"}``."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.optim import optimize_acqf

    bounds = np.asarray(bounds, float)
    model, weights, task_column = task_model(X, y, bounds, sources, guard=guard)
    # NOTE: seeded after the model is fitted, so the acquisition's Monte Carlo samples do not depend
    # on how many source models the guard fitted: with every source left out, this is the cold start
    # step for step.
    torch.manual_seed(seed)
    acq = qLogNoisyExpectedImprovement(model, X_baseline=_baseline(X, bounds, task_column), prune_baseline=False,
                                       cache_root=False)
    candidate, _ = optimize_acqf(acq, bounds=_box(bounds.shape[1], task_column), q=q, num_restarts=num_restarts,
                                 raw_samples=raw_samples, fixed_features=_fixed(task_column), sequential=True)
    unit = candidate[:, :bounds.shape[1]].detach().numpy()
    return {"next": bounds[0] + unit * (bounds[1] - bounds[0]), "weights": weights,
            "model": "single-task" if task_column is None else "multi-task"}


def _baseline(X: np.ndarray, bounds: np.ndarray, task_column: int | None) -> torch.Tensor:
    """The target's observations as model inputs (with the target's task id where there is a task input)."""
    unit = _unit(X, bounds)
    return unit if task_column is None else torch.column_stack([unit, torch.zeros(len(unit), dtype=torch.double)])


def _box(d: int, task_column: int | None) -> torch.Tensor:
    extra = [] if task_column is None else [0.0]
    return torch.tensor([[0.0] * d + extra, [1.0] * d + extra], dtype=torch.double)


def _fixed(task_column: int | None) -> dict | None:
    return None if task_column is None else {task_column: 0.0}
