"""Text classification: one class per text (multi-class) or a set of labels per text (multi-label).

Which one comes from the data: a dataset where every text has exactly one label is multi-class,
anything else multi-label (multi-hot targets, one sigmoid per class, labels above ``threshold``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._base import register_task
from .defect_detection import FaultDiagnosis


class TextClassification(FaultDiagnosis):
    """Multi-class like :class:`FaultDiagnosis` (early stopping on macro-F1, which an unbalanced
    maintenance log needs), or multi-label with binary cross-entropy per class."""

    primary_metric = "macro_f1"

    def __init__(self, n_classes: int | None = None, hidden: int = 64, dropout: float = 0.1,
                 multi_label: bool | None = None, threshold: float = 0.5) -> None:
        super().__init__(n_classes, hidden, dropout)
        if not 0 < threshold < 1:
            raise ValueError(f"task.options.threshold: a probability in (0, 1), not {threshold!r}")
        self.multi_label, self.threshold = multi_label, threshold

    def bind(self, classes: list[str], multi_label: bool = False) -> None:
        if self.multi_label is None:
            self.multi_label = multi_label
        elif self.multi_label != multi_label:
            raise ValueError(f"task.options.multi_label={self.multi_label} but the data has "
                             f"{'sets of labels' if multi_label else 'one label per text'}; leave it unset")
        super().bind(classes, multi_label=False)

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(output, y.float(), reduction="none").mean(-1)
        return super().sample_losses(output, y)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(output) > self.threshold).long() if self.multi_label else output.argmax(-1)

    def served(self, output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(output) if self.multi_label else torch.softmax(output, dim=-1)

    def metrics(self, output: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        if not self.multi_label:
            return super().metrics(output, y)
        from sklearn.metrics import f1_score

        pred, true = self.predict(output).numpy(), (y > 0.5).long().numpy()
        return {"micro_f1": float(f1_score(true, pred, average="micro", zero_division=0)),
                "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
                "exact_match": float((pred == true).all(-1).mean())}

    def output(self, classes=None) -> dict:
        out = super().output(classes)
        return {**out, "kind": "labels", "threshold": self.threshold} if self.multi_label else out

    def config(self) -> dict:
        return {**super().config(), "multi_label": self.multi_label, "threshold": self.threshold}


@register_task("text_classification")
def text_classification(**options) -> TextClassification:
    return TextClassification(**options)
