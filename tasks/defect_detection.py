"""Fault diagnosis / defect classification: one class per window."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._base import Task, mlp_head, register_task
from .metrics import accuracy, macro_f1


class FaultDiagnosis(Task):
    task_type = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, n_classes: int = 10, hidden: int = 64, dropout: float = 0.1) -> None:
        self.n_classes, self.hidden, self.dropout = n_classes, hidden, dropout

    def build_head(self, in_dim: int) -> nn.Module:
        return mlp_head(in_dim, self.n_classes, self.hidden, self.dropout)

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, y.long(), reduction="none")

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(-1)

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        pred = self.predict(output)
        return {"accuracy": accuracy(pred, y.long()), "macro_f1": macro_f1(pred, y.long(), self.n_classes)}

    def output(self, classes=None) -> dict:
        return {"kind": "class", "classes": list(classes) if classes and len(classes) == self.n_classes else []}

    def config(self) -> dict:
        return {"name": self.name, "n_classes": self.n_classes, "hidden": self.hidden, "dropout": self.dropout}


@register_task("fault_diagnosis")
def fault_diagnosis(**options) -> Task:
    return FaultDiagnosis(**options)
