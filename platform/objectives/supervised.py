"""Supervised pretraining on labelled source data."""

from __future__ import annotations

import torch

from ._base import Objective, register_objective


class Supervised(Objective):
    needs_labels = True

    def __init__(self, encoder, task) -> None:
        super().__init__(encoder)
        if task is None:
            raise ValueError("supervised pretraining needs a task (e.g. task=rul)")
        self.task = task
        self.head = task.build_head(encoder.out_dim)

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        return {"loss": self.task.loss(self.head(self.encoder(batch.inputs)), batch.target)}


@register_objective("supervised")
def supervised(encoder, *, spec=None, task=None) -> Objective:
    return Supervised(encoder, task)
