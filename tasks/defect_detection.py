"""Fault diagnosis / defect classification: one class per window or image."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._base import Task, mlp_head, register_task
from .metrics import accuracy, macro_f1


class FaultDiagnosis(Task):
    """One class per sample (a window's fault, an image's defect); ``n_classes`` defaults to the
    data's class count."""

    task_type = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, n_classes: int | None = None, hidden: int = 64, dropout: float = 0.1) -> None:
        self.n_classes, self.hidden, self.dropout = n_classes, hidden, dropout

    def bind(self, classes: list[str], multi_label: bool = False) -> None:
        super().bind(classes, multi_label)
        if self.n_classes is None:
            if not classes:
                raise ValueError(f"task {self.name}: the data names no classes; set task.options.n_classes")
            self.n_classes = len(classes)
        elif classes and self.n_classes != len(classes):
            raise ValueError(f"task.options.n_classes={self.n_classes} but the data has {len(classes)} classes "
                             f"({', '.join(classes)}); leave it unset to take the data's")

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
