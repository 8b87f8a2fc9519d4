"""Metrics computed on tensors: RMSE, the PHM08 (NASA) score, accuracy, F1, AUROC and average precision."""

from __future__ import annotations

import torch


def rmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((pred.double() - true.double()) ** 2)))


def nasa_score(pred: torch.Tensor, true: torch.Tensor) -> float:
    """PHM08 asymmetric score (Saxena et al. 2008): late predictions cost more than early ones.

    ``sum(exp(-d/13) - 1)`` for ``d = pred - true < 0`` and ``sum(exp(d/10) - 1)`` otherwise.
    """
    d = pred.double() - true.double()
    return float(torch.where(d < 0, torch.exp(-d / 13) - 1, torch.exp(d / 10) - 1).sum())


def accuracy(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float((pred == true).double().mean())


def macro_f1(pred: torch.Tensor, true: torch.Tensor, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``true`` or ``pred``."""
    scores = []
    for c in range(n_classes):
        tp = ((pred == c) & (true == c)).sum().item()
        fp = ((pred == c) & (true != c)).sum().item()
        fn = ((pred != c) & (true == c)).sum().item()
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores)) if scores else 0.0


def ranking_scores(score: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """AUROC and average precision of ``score`` for the positive class ``true == 1`` (scikit-learn);
    both need each class present."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = true.cpu().numpy(), score.detach().cpu().double().numpy()
    return {"auroc": float(roc_auc_score(y, s)), "average_precision": float(average_precision_score(y, s))}
