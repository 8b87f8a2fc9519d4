"""The pretraining-objective contract and registry.

An objective owns the encoder plus whatever extra modules it trains (decoder, projection head,
discriminator); ``step(batch, progress)`` returns ``{"loss": tensor, **logged_terms}`` so the one
training loop runs every objective.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encoders import Encoder
from ..registry import Registry


class Objective(nn.Module):
    needs_labels: bool = False

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def step(self, batch: tuple[torch.Tensor, ...], progress: float = 0.0) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def reconstruction_decoder(encoder: Encoder, c_in: int, seq_len: int) -> nn.Module:
    """1x1 conv over sequence features where the encoder keeps the time axis, else a linear map."""
    if encoder.sequence_features:
        return nn.Conv1d(encoder.out_dim, c_in, 1)
    return nn.Sequential(nn.Linear(encoder.out_dim, c_in * seq_len), nn.Unflatten(1, (c_in, seq_len)))


def decode(encoder: Encoder, decoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    features = encoder.forward_features(x) if encoder.sequence_features else encoder(x)
    return decoder(features)


def _load_builtin() -> None:
    from . import adversarial, contrastive, masked, supervised  # noqa: F401


OBJECTIVES = Registry("objective", _load_builtin)
register_objective = OBJECTIVES.register
list_objectives = OBJECTIVES.names


def create_objective(name: str, encoder: Encoder, c_in: int, seq_len: int, task=None, **options) -> Objective:
    """Builds objective ``name`` around ``encoder``; ``task`` is required by supervised pretraining."""
    return OBJECTIVES.create(name, encoder, c_in=c_in, seq_len=seq_len, task=task, **options)
