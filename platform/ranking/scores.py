"""Transferability scores: how well a frozen encoder's features of a few labelled target samples
predict their labels, computed without fine-tuning. Higher is better for every score.

- :func:`logme`: the log marginal evidence of a Bayesian linear model on the features (You et al.,
  LogME, ICML 2021), per sample; classes are one-hot columns, averaged.
- :func:`h_score`: tr(cov(f)⁻¹ cov(E[f | y])) (Bao et al., ICIP 2019) with a shrunk feature
  covariance (Ledoit–Wolf, as in Ibrahim et al., ICLR 2022); regression targets are binned.
- :func:`knn_score`: a k-nearest-neighbour predictor on standardized features, cross-validated over
  groups (units, so that windows of one engine never predict each other): accuracy, or −RMSE.
- :func:`linear_score`: a linear probe (ridge, or logistic regression) cross-validated the same way.
- :func:`leep`: the log expected empirical prediction of a source classifier's class
  probabilities (Nguyen et al., ICML 2020).

# NOTE: no maintained package implements LogME, H-score or LEEP; they are written here from the
# papers' formulas on numpy and scikit-learn, and tested against their definitions.
"""

from __future__ import annotations

import numpy as np


def logme(features: np.ndarray, labels: np.ndarray, *, regression: bool, max_iter: int = 50,
          tol: float = 1e-4) -> float:
    """Mean over label columns of log p(y | F, α*, β*) / n, with α (weight precision) and β (noise
    precision) maximizing the evidence (MacKay's fixed point, in the SVD basis of F)."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    columns = _targets(labels, regression)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2  # eigenvalues of FᵀF (the rest of the d are zero)
    evidences = []
    for y in columns.T:
        x2 = (u.T @ y) ** 2  # y's energy along each singular direction
        outside = max(float(y @ y - x2.sum()), 0.0)  # and outside F's column space
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * x2 / (sigma + t) ** 2).sum())  # |m|², m the posterior mean weights
            res2 = float((x2 * (t / (sigma + t)) ** 2).sum()) + outside  # |Fm − y|²
            alpha, beta = gamma / (m2 + 1e-12), (n - gamma) / (res2 + 1e-12)
            if abs(alpha / beta - t) <= tol * t:
                break
        t = alpha / beta
        m2 = float((sigma * x2 / (sigma + t) ** 2).sum())
        res2 = float((x2 * (t / (sigma + t)) ** 2).sum()) + outside
        log_det = float(np.log(alpha + beta * sigma).sum()) + (d - sigma.size) * np.log(alpha)
        evidence = (d * np.log(alpha) + n * np.log(beta) - log_det - beta * res2 - alpha * m2
                    - n * np.log(2 * np.pi)) / 2
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def h_score(features: np.ndarray, labels: np.ndarray, *, regression: bool, bins: int = 5) -> float:
    """tr(Σ_f⁻¹ Σ_{E[f|y]}) with Σ_f shrunk (Ledoit–Wolf); regression labels fall into ``bins``
    quantile bins."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0)
    y = _classes(labels, regression, bins)
    cov_f = LedoitWolf(assume_centered=True).fit(f).covariance_
    class_means = np.zeros_like(f)
    for c in np.unique(y):
        class_means[y == c] = f[y == c].mean(axis=0)
    cov_g = class_means.T @ class_means / len(f)
    return float(np.trace(np.linalg.solve(cov_f, cov_g)))


def knn_score(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, *, regression: bool,
              k: int = 5, folds: int = 5) -> float:
    """Cross-validated k-NN on standardized features: accuracy for classes, −RMSE for regression.
    Folds hold whole groups when ``groups`` has at least two."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    def model(largest_train: int):
        neighbours = max(1, min(k, largest_train - 1))
        return KNeighborsRegressor(neighbours) if regression else KNeighborsClassifier(neighbours)

    return _cross_validated(model, features, labels, groups, regression=regression, folds=folds, name="knn_score")


def linear_score(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, *, regression: bool,
                 folds: int = 5) -> float:
    """A cross-validated linear probe on standardized features (ridge regression with its penalty
    chosen by leave-one-out inside each training fold; logistic regression for classes): accuracy,
    or −RMSE. Folds hold whole groups as :func:`knn_score`'s do."""
    from sklearn.linear_model import LogisticRegression, RidgeCV

    def model(largest_train: int):
        return RidgeCV(alphas=np.logspace(-2, 4, 13)) if regression else LogisticRegression(max_iter=2000)

    return _cross_validated(model, features, labels, groups, regression=regression, folds=folds, name="linear_score")


def _cross_validated(model, features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, *, regression: bool,
                     folds: int, name: str) -> float:
    """``model(largest training fold)``'s out-of-fold predictions on standardized features, scored
    as accuracy or −RMSE; folds hold whole groups when ``groups`` has at least two, else are
    stratified by class (shuffled for regression)."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    n_groups = len(np.unique(groups)) if groups is not None else 0
    if n_groups >= 2:
        splitter, kwargs = GroupKFold(n_splits=min(folds, n_groups)), {"groups": groups}
    elif regression:
        splitter, kwargs = KFold(n_splits=min(folds, len(y)), shuffle=True, random_state=0), {}
    else:
        smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        if smallest < 2:
            raise ValueError(f"{name} needs at least two labelled samples of every class")
        splitter, kwargs = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=0), {}
    largest_train = len(y) - len(y) // splitter.get_n_splits()
    pred = cross_val_predict(make_pipeline(StandardScaler(), model(largest_train)), f, y, cv=splitter, **kwargs)
    if regression:
        return -float(np.sqrt(np.mean((pred - y.astype(np.float64)) ** 2)))
    return float(np.mean(pred == y))


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of a source classifier: θ(x) its class probabilities over source classes z on the
    target samples; P(y | z) the empirical conditional from θ and the target labels;
    LEEP = mean log Σ_z P(y_i | z) θ(x_i)_z."""
    theta = np.asarray(source_probabilities, dtype=np.float64)
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    joint = np.zeros((y.max() + 1, theta.shape[1]))
    np.add.at(joint, y, theta)
    joint /= len(y)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-12)  # P(y | z)
    return float(np.mean(np.log((theta * conditional[y]).sum(axis=1) + 1e-12)))


def _targets(labels: np.ndarray, regression: bool) -> np.ndarray:
    """Label columns: the standardized value for regression, one-hot columns for classes."""
    y = np.asarray(labels)
    if regression:
        y = y.astype(np.float64).reshape(len(y), -1)
        return (y - y.mean(axis=0)) / np.maximum(y.std(axis=0), 1e-12)
    ids = np.unique(y, return_inverse=True)[1]
    return np.eye(ids.max() + 1)[ids]


def _classes(labels: np.ndarray, regression: bool, bins: int) -> np.ndarray:
    y = np.asarray(labels)
    if not regression:
        return np.unique(y, return_inverse=True)[1]
    edges = np.unique(np.quantile(y.astype(np.float64), np.linspace(0, 1, bins + 1)[1:-1]))
    return np.digitize(y, edges)
