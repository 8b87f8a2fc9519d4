"""Predictive maintenance: remaining-useful-life regression and failure-within-horizon classification."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._base import Task, mlp_head, register_task
from .metrics import accuracy, macro_f1, nasa_score, ranking_scores, rmse


class RULRegression(Task):
    """RUL in cycles; the head predicts RUL / ``scale`` so its output stays near unit range."""

    task_type = "regression"
    primary_metric = "rmse"
    higher_is_better = False

    def __init__(self, scale: float = 125.0, hidden: int = 64, dropout: float = 0.1, unit: str = "cycles") -> None:
        self.scale, self.hidden, self.dropout, self.unit = scale, hidden, dropout, unit

    def build_head(self, in_dim: int) -> nn.Module:
        return mlp_head(in_dim, 1, self.hidden, self.dropout)

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (output.squeeze(-1) - y.float() / self.scale) ** 2

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """RUL in cycles, never below 0: what the run is scored on is what the exported model serves."""
        return (output.squeeze(-1) * self.scale).clamp(min=0)

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        pred = self.predict(output)
        return {"rmse": rmse(pred, y), "score": nasa_score(pred, y), "mae": float((pred - y).abs().mean())}

    def output(self, classes=None) -> dict:
        return {"kind": "regression", "names": ["rul"], "units": [self.unit]}

    def config(self) -> dict:
        return {"name": self.name, "scale": self.scale, "hidden": self.hidden, "dropout": self.dropout,
                "unit": self.unit}


class FailureWithin(Task):
    """Will the asset fail within ``horizon`` cycles? Labels are RUL; targets are RUL <= horizon."""

    task_type = "classification"
    primary_metric = "f1"
    higher_is_better = True

    def __init__(self, horizon: int = 30, hidden: int = 64, dropout: float = 0.1) -> None:
        self.horizon, self.hidden, self.dropout = horizon, hidden, dropout

    def build_head(self, in_dim: int) -> nn.Module:
        return mlp_head(in_dim, 2, self.hidden, self.dropout)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y <= self.horizon).long()

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, self.targets(y), reduction="none")

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(-1)

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        pred, true = self.predict(output), self.targets(y)
        tp = ((pred == 1) & (true == 1)).sum().item()
        f1 = 2 * tp / max(1, (pred == 1).sum().item() + (true == 1).sum().item())
        out = {"accuracy": accuracy(pred, true), "f1": f1, "macro_f1": macro_f1(pred, true, 2)}
        if true.min() != true.max():  # threshold-free scores of P(fail within horizon), where both classes occur
            out.update(ranking_scores(output.float().softmax(-1)[:, 1], true))
        return out

    def output(self, classes=None) -> dict:
        return {"kind": "class", "classes": ["no", "yes"]}

    def config(self) -> dict:
        return {"name": self.name, "horizon": self.horizon, "hidden": self.hidden, "dropout": self.dropout}


@register_task("rul")
def rul(**options) -> Task:
    return RULRegression(**options)


@register_task("failure_within")
def failure_within(**options) -> Task:
    return FailureWithin(**options)
