"""Leave-one-run-out evaluation of a quality surrogate.

With a handful of experiments, a row-level split leaks: neighbouring rows of one run are nearly
identical. Every run is held out once, the surrogate is fitted on the others, and the held-out
run's outcomes are scored: AUROC and Brier score for binary outcomes, RMSE for numeric ones, and
for all the share of observed outcomes inside the 90 % prediction set (coverage; calibrated
uncertainty covers about 90 %).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .surrogate import SurrogateConfig, covered, fit_surrogate, predict, summarize
from .table import ProcessData


def leave_one_run_out(data: ProcessData, config: SurrogateConfig = SurrogateConfig(), *,
                      features: Callable[[np.ndarray], np.ndarray] | None = None, level: float = 0.9,
                      progress: Callable[[int], None] | None = None, folds: list[int] | None = None) -> dict:
    """Held-out predictions of every run (or of ``folds``) and their metrics. ``features(train_rows)``
    returns run features ``[runs, f]`` computed from the training runs only (e.g. an encoder fitted
    on them)."""
    n, k = data.Y.shape
    held_out = {key: np.full((n, k), np.nan) for key in ("mean", "lo", "hi")}
    for done, i in enumerate(range(n) if folds is None else folds, 1):
        for key, value in held_out_run(data, config, i, features=features, level=level).items():
            held_out[key][i] = value
        if progress:
            progress(done)
    metrics = outcome_metrics(data, held_out, level) if folds is None else None
    return {"predictions": held_out, "metrics": metrics}


def held_out_run(data: ProcessData, config: SurrogateConfig, i: int, *,
                 features: Callable[[np.ndarray], np.ndarray] | None = None, level: float = 0.9) -> dict:
    """Run ``i``'s outcomes predicted by a surrogate fitted on every other run."""
    train = np.delete(np.arange(len(data.runs)), i)
    extra = features(train) if features is not None else None
    model = fit_surrogate(data, config, rows=train, features=extra)
    X = data.X[i:i + 1] if extra is None else np.concatenate([data.X[i:i + 1], extra[i:i + 1]], axis=1)
    s = summarize(predict(model, X), data.outcomes, level)
    return {key: s[key][0] for key in ("mean", "lo", "hi")}


def outcome_metrics(data: ProcessData, held_out: dict[str, np.ndarray], level: float = 0.9) -> dict[str, dict]:
    """Per outcome: runs scored, AUROC / Brier (binary) or RMSE (numeric), coverage of the prediction sets."""
    from sklearn.metrics import roc_auc_score

    inside = covered(held_out, data.Y, data.outcomes, level)
    out = {}
    for j, outcome in enumerate(data.outcomes):
        seen = ~np.isnan(data.Y[:, j])
        y, p = data.Y[seen, j], held_out["mean"][seen, j]
        scores = {"runs": int(seen.sum()), f"coverage_{round(level * 100)}": float(np.mean(inside[seen, j]))}
        if outcome.kind == "binary":
            scores["auroc"] = float(roc_auc_score(y, p)) if len(set(y)) == 2 else None
            scores["brier"] = float(np.mean((p - y) ** 2))
            scores["set_size"] = float(np.mean((p >= 1 - level).astype(int) + ((1 - p) >= 1 - level).astype(int)))
        else:
            scores["rmse"] = float(np.sqrt(np.mean((p - y) ** 2)))
        out[outcome.name] = scores
    return out


def baseline_metrics(data: ProcessData, level: float = 0.9) -> dict[str, dict]:
    """The same leave-one-run-out metrics for two references: the training runs' rate of each
    outcome (``prevalence``) and a logistic regression on the set-points (``logistic``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n, k = data.Y.shape
    results = {}
    for name in ("prevalence", "logistic"):
        mean = np.full((n, k), np.nan)
        for i in range(n):
            train = np.delete(np.arange(n), i)
            for j, outcome in enumerate(data.outcomes):
                seen = train[~np.isnan(data.Y[train, j])]
                y = data.Y[seen, j]
                if name == "prevalence" or outcome.kind != "binary" or len(set(y)) < 2:
                    mean[i, j] = y.mean()
                else:
                    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(data.X[seen], y)
                    mean[i, j] = clf.predict_proba(data.X[i:i + 1])[0, 1]
        results[name] = outcome_metrics(data, {"mean": mean, "lo": mean, "hi": mean}, level)
    return results
