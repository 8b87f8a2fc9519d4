"""Regression of one or several named outputs (e.g. a process's quality measures, or tool wear and
surface roughness at once): targets ``[B]`` or ``[B, K]``."""

from __future__ import annotations

import torch

from ._base import Task, mlp_head, register_task
from .metrics import rmse


class Regression(Task):
    """``K`` outputs, each predicted as (value - ``center``) / ``scale`` so the head works near unit range.

    Args:
        outputs: output names, in target column order.
        units: one unit per output (or none).
        scale, center: per output (a list) or shared (a number).
        weights: per-output loss weights (default equal).
    """

    task_type = "regression"
    primary_metric = "rmse"
    higher_is_better = False

    def __init__(self, outputs: list[str] | tuple[str, ...] = ("value",), units: list[str] | None = None,
                 scale: float | list[float] = 1.0, center: float | list[float] = 0.0,
                 weights: list[float] | None = None, hidden: int = 64, dropout: float = 0.1) -> None:
        self.outputs = list(outputs)
        k = len(self.outputs)
        if not k:
            raise ValueError("regression task: give at least one output name")
        self.units = list(units) if units is not None else [""] * k
        per_output = {"units": self.units, "scale": _per_output(scale, k), "center": _per_output(center, k),
                      "weights": _per_output(1.0 if weights is None else weights, k)}
        for key, values in per_output.items():
            if len(values) != k:
                raise ValueError(f"regression task: {key} needs one value per output ({k}: {self.outputs}), "
                                 f"got {len(values)}")
        if any(s <= 0 for s in per_output["scale"]):
            raise ValueError(f"regression task: scale must be positive, got {per_output['scale']}")
        self.scale, self.center, self.weights = per_output["scale"], per_output["center"], per_output["weights"]
        self.hidden, self.dropout = hidden, dropout

    def build_head(self, in_dim: int):
        return mlp_head(in_dim, len(self.outputs), self.hidden, self.dropout)

    def _columns(self, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        return y.unsqueeze(-1) if y.dim() == 1 else y

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        scale, center, weights = (torch.tensor(v, device=output.device) for v in (self.scale, self.center, self.weights))
        err = (output - (self._columns(y) - center) / scale) ** 2
        return (err * weights).sum(-1) / weights.sum()

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        pred = output * torch.tensor(self.scale, device=output.device) + torch.tensor(self.center, device=output.device)
        return pred.squeeze(-1) if len(self.outputs) == 1 else pred

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        pred, true = self.predict(output), self._columns(y)
        pred = pred.unsqueeze(-1) if pred.dim() == 1 else pred
        per = {name: rmse(pred[:, i], true[:, i]) for i, name in enumerate(self.outputs)}
        # NOTE: the mean of per-output RMSEs divided by their scale, so outputs of different units weigh alike
        scaled = sum(per[n] / s for n, s in zip(self.outputs, self.scale)) / len(self.outputs)
        return {"rmse": scaled, **{f"rmse_{n}": v for n, v in per.items()},
                **{f"mae_{n}": float((pred[:, i] - true[:, i]).abs().mean()) for i, n in enumerate(self.outputs)}}

    def output(self, classes=None) -> dict:
        return {"kind": "regression", "names": list(self.outputs), "units": list(self.units)}

    def config(self) -> dict:
        return {"name": self.name, "outputs": self.outputs, "units": self.units, "scale": self.scale,
                "center": self.center, "weights": self.weights, "hidden": self.hidden, "dropout": self.dropout}


def _per_output(value, k: int) -> list[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * k


@register_task("regression")
def regression(**options) -> Task:
    return Regression(**options)
