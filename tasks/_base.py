"""The task contract (head, loss, metrics) and the name → builder registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_TASKS: dict[str, Callable[..., "Task"]] = {}


class Task:
    """A prediction task on top of an encoder: builds its head, computes loss and metrics.

    ``task_type`` is "regression" or "classification"; ``primary_metric`` names the metric used
    for early stopping and ``higher_is_better`` its direction.
    """

    name: str = ""
    task_type: str = "regression"
    primary_metric: str = "loss"
    higher_is_better: bool = False

    def build_head(self, in_dim: int) -> nn.Module:
        raise NotImplementedError

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Turns window labels (e.g. RUL) into this task's targets."""
        return y

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Head output → predictions in label units (RUL cycles, class ids)."""
        raise NotImplementedError

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def config(self) -> dict:
        """What is needed to rebuild this task (stored with checkpoints)."""
        return {"name": self.name}


def register_task(name: str) -> Callable:
    def wrap(builder: Callable[..., Task]) -> Callable[..., Task]:
        _TASKS[name] = builder
        return builder
    return wrap


def list_tasks() -> list[str]:
    _load_builtin()
    return sorted(_TASKS)


def create_task(name: str, **options) -> Task:
    """Builds task ``name``; options left as None keep the preset's value."""
    _load_builtin()
    try:
        builder = _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))}") from None
    task = builder(**{k: v for k, v in options.items() if v is not None})
    task.name = name
    return task


def mlp_head(in_dim: int, out_dim: int, hidden: int = 64, dropout: float = 0.1) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


def _load_builtin() -> None:
    from . import defect_detection, predictive_maintenance  # noqa: F401
