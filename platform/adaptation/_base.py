"""Domain-adaptation methods: a task model trained on labelled source plus unlabelled (or a few
labelled) target samples. Each method composes plain losses from ``transferline.losses`` on the
features the encoder returns, whatever its modality.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..data.batch import Batch
from ..losses import dann_schedule
from ..registry import Registry


@dataclass
class DomainBatch:
    """Labelled source samples, target samples (labels unused), and optionally labelled target samples."""

    source: Batch
    target: Batch | None = None
    target_labelled: Batch | None = None


class Adaptation(nn.Module):
    """Holds encoder and head; ``step`` returns ``{"loss": ..., **terms}``.

    ``supports_unlabeled_target``: uses unlabelled target windows. ``weight`` scales the
    alignment term, ramped by :func:`transferline.losses.dann_schedule` over training.
    ``entropy`` (classification only) adds the mean prediction entropy on target windows, on the
    same ramp: aligning features matches the two domains as wholes, and minimizing entropy then
    pushes target windows away from the class boundaries, where two similar classes (e.g. ball
    faults of two sizes) overlap (Grandvalet & Bengio, NeurIPS 2004; as in VADA, Shu et al. 2018).
    ``pseudo`` (classification only) is self-training after alignment: from ``pseudo_start`` of
    training on, target samples predicted with probability >= ``threshold`` take their predicted
    class as a label, at weight ``pseudo`` (Lee, ICML-W 2013; confidence-thresholded as in FixMatch,
    Sohn et al. 2020).
    """

    supports_unlabeled_target: bool = True

    def __init__(self, encoder: nn.Module, head: nn.Module, task, weight: float = 1.0, ramp: bool = True,
                 entropy: float = 0.0, pseudo: float = 0.0, threshold: float = 0.9, pseudo_start: float = 0.5) -> None:
        super().__init__()
        for option, value in (("entropy", entropy), ("pseudo", pseudo)):
            if value and task.task_type != "classification":
                raise ValueError(f"adaptation option {option} applies to classification tasks; {task.name!r} is "
                                 f"{task.task_type}")
        if not 0 < threshold <= 1 or not 0 <= pseudo_start <= 1:
            raise ValueError(f"adaptation options threshold in (0, 1] and pseudo_start in [0, 1], not {threshold} "
                             f"and {pseudo_start}")
        self.encoder, self.head, self.task = encoder, head, task
        self.weight, self.ramp, self.entropy = weight, ramp, entropy
        self.pseudo, self.threshold, self.pseudo_start = pseudo, threshold, pseudo_start

    def forward(self, x: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Head outputs for one input tensor or a dict of modalities (a batch's ``inputs``)."""
        return self.head(self.encoder(x))

    def ramped(self, progress: float) -> float:
        """The DANN schedule's factor at ``progress`` (1 without ramp)."""
        return dann_schedule(progress) if self.ramp else 1.0

    def coefficient(self, progress: float) -> float:
        return self.weight * self.ramped(progress)

    def supervised(self, batch: DomainBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """Task loss on source (and labelled target); returns terms and the source/target features."""
        parts = [batch.source] + [b for b in (batch.target, batch.target_labelled) if b is not None]
        # NOTE: one forward over all parts, so BatchNorm sees source and target together
        features = self.encoder(Batch.cat([Batch(p.inputs, present=p.present) for p in parts]).inputs)
        n_s = len(batch.source)
        n_t = len(batch.target) if batch.target is not None else 0
        f_s, f_t = features[:n_s], features[n_s:n_s + n_t] if n_t else None
        terms = {"task": self.task.loss(self.head(f_s), batch.source.target)}
        if batch.target_labelled is not None:
            terms["target_task"] = self.task.loss(self.head(features[n_s + n_t:]), batch.target_labelled.target)
        return terms, f_s, f_t

    def alignment(self, f_s: torch.Tensor, f_t: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        """A discrepancy between source and target features: ``{"align": ..., **terms}`` or ``{}``."""
        return {}

    def alignment_loss(self, f_s: torch.Tensor, f_t: torch.Tensor,
                       progress: float) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """The alignment term as added to the loss, and the terms to report."""
        align = self.alignment(f_s, f_t, progress)
        return (self.coefficient(progress) * align["align"], align) if align else (0.0, {})

    def target_entropy(self, f_t: torch.Tensor, progress: float) -> tuple[torch.Tensor | float, dict]:
        """The weighted entropy term to add to the loss, and its value to report."""
        if not self.entropy:
            return 0.0, {}
        log_p = torch.log_softmax(self.head(f_t), dim=-1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean()
        return self.entropy * self.ramped(progress) * entropy, {"target_entropy": entropy}

    def pseudo_labels(self, f_t: torch.Tensor, progress: float) -> tuple[torch.Tensor | float, dict]:
        """The weighted cross-entropy of confident target predictions with their own argmax (labels
        detached), averaged over the whole target batch; zero before ``pseudo_start``."""
        if not self.pseudo or progress < self.pseudo_start:
            return 0.0, {}
        logits = self.head(f_t)
        confidence, labels = torch.softmax(logits.detach().float(), -1).max(-1)
        keep = (confidence >= self.threshold).float()
        loss = (F.cross_entropy(logits, labels, reduction="none") * keep).mean()
        return self.pseudo * loss, {"pseudo_loss": loss, "pseudo_fraction": keep.mean()}

    def step(self, batch: DomainBatch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        terms, f_s, f_t = self.supervised(batch)
        loss = terms["task"] + terms.get("target_task", 0.0)
        if f_t is not None:
            for extra, reported in (self.alignment_loss(f_s, f_t, progress), self.target_entropy(f_t, progress),
                                    self.pseudo_labels(f_t, progress)):
                loss = loss + extra
                terms.update(reported)
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


def _load_builtin() -> None:
    from . import methods  # noqa: F401


ADAPTATIONS = Registry("adaptation", _load_builtin)
register_adaptation = ADAPTATIONS.register
list_adaptations = ADAPTATIONS.names


def create_adaptation(name: str, encoder: nn.Module, head: nn.Module, task, **options) -> Adaptation:
    method = ADAPTATIONS.create(name, encoder, head, task, **options)
    method.name = name
    return method
