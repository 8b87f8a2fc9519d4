"""The task contract (head, loss, metrics) and the name → builder registry."""

from __future__ import annotations

import torch
from torch import nn

from transferline.registry import Registry


class Task:
    """A prediction task on top of an encoder: builds its head, computes loss and metrics.

    ``task_type`` is "regression" or "classification"; ``primary_metric`` names the metric used
    for early stopping and ``higher_is_better`` its direction. Targets take the task's own shape
    (a tensor per batch, or a list with one entry per sample, e.g. boxes); metrics accumulate over
    a whole evaluation set through :meth:`evaluator`.
    """

    name: str = ""
    task_type: str = "regression"
    primary_metric: str = "loss"
    higher_is_better: bool = False

    def build_head(self, in_dim: int) -> nn.Module:
        raise NotImplementedError

    def bind(self, classes: list[str], multi_label: bool = False) -> None:
        """Fits the task to the data's class names (in id order; empty without classes) before its
        head is built; ``multi_label``: each sample has a set of labels. Raises ValueError where
        they contradict the task's options."""
        if multi_label:
            raise ValueError(f"task {self.name} takes one label per sample, but the data has sets of labels (none or "
                             "several per sample); use task=text_classification")

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Turns window labels (e.g. RUL) into this task's targets."""
        return y

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.sample_losses(output, y).mean()

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of each sample, shape ``[B]`` (``loss`` is their mean)."""
        raise NotImplementedError

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Head output → predictions in label units (RUL cycles, class ids)."""
        raise NotImplementedError

    def served(self, output: torch.Tensor) -> torch.Tensor:
        """What an exported model answers: class probabilities for classifiers (the server derives
        ids and labels from them), else :meth:`predict`."""
        return torch.softmax(output, dim=-1) if self.task_type == "classification" else self.predict(output)

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics of a whole set's outputs and targets (what the default :meth:`evaluator` computes)."""
        raise NotImplementedError

    def evaluator(self) -> "Evaluator":
        """A fresh accumulator: ``update(output, target)`` per batch, then ``compute()``."""
        return Evaluator(self)

    def output(self, classes: list[str] | None = None) -> dict:
        """What :meth:`predict` returns, for the registry and clients: ``{"kind": "class", "classes":
        [...]}`` or ``{"kind": "regression", "names": [...], "units": [...]}``. ``classes`` are the
        dataset's class names in id order, where it has them."""
        raise NotImplementedError

    def config(self) -> dict:
        """What is needed to rebuild this task (stored with checkpoints)."""
        return {"name": self.name}


class Evaluator:
    """Accumulates outputs and targets of an evaluation set (on the CPU), then computes the task's
    metrics over all of it at once (as ``torchmetrics.Metric.update`` / ``compute``)."""

    def __init__(self, task: Task) -> None:
        self.task, self.outputs, self.targets = task, [], []

    def update(self, output: torch.Tensor, target) -> None:
        self.outputs.append(output.detach().float().cpu())
        self.targets.append(target.cpu() if torch.is_tensor(target) else target)

    def compute(self) -> dict[str, float]:
        targets = [x for t in self.targets for x in t] if isinstance(self.targets[0], list) else torch.cat(self.targets)
        return self.task.metrics(torch.cat(self.outputs), targets)


def mlp_head(in_dim: int, out_dim: int, hidden: int = 64, dropout: float = 0.1) -> nn.Module:
    """One hidden layer of ``hidden`` units; ``hidden=0``: a linear layer on ``dropout``-ed features."""
    if hidden < 0:
        raise ValueError(f"task.options.hidden: 0 (a linear head) or more units, not {hidden}")
    if hidden == 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


def _load_builtin() -> None:
    from . import defect_detection, predictive_maintenance, regression, text_classification  # noqa: F401


TASKS = Registry("task", _load_builtin)
register_task = TASKS.register
list_tasks = TASKS.names


def create_task(name: str, **options) -> Task:
    """Builds task ``name``; options left as None keep the preset's value."""
    task = TASKS.create(name, **options)
    task.name = name
    return task
