"""The pretraining-objective contract and registry.

An objective owns the encoder plus whatever extra modules it trains (decoder, projection head,
discriminator); ``step(batch, progress)`` takes a :class:`~transferline.data.batch.Batch` and
returns ``{"loss": tensor, **logged_terms}`` so the one training loop runs every objective.
``modalities`` names the inputs an objective can learn from (None: any encoder's).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.inputs import InputSpec, SeriesInput
from ..encoders import Encoder, encoder_input
from ..registry import Registry


class Objective(nn.Module):
    needs_labels: bool = False
    modalities: tuple[str, ...] | None = None

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def step(self, batch: Batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def own_input(self, batch: Batch) -> torch.Tensor:
        """The batch's input of the encoder's modality."""
        return batch.inputs[self.encoder.modality]


def reconstruction_decoder(encoder: Encoder, spec: SeriesInput) -> nn.Module:
    """1x1 conv over sequence features where the encoder keeps the time axis, else a linear map."""
    c_in, seq_len = spec.channels, spec.window
    if encoder.sequence_features:
        return nn.Conv1d(encoder.out_dim, c_in, 1)
    return nn.Sequential(nn.Linear(encoder.out_dim, c_in * seq_len), nn.Unflatten(1, (c_in, seq_len)))


def decode(encoder: Encoder, decoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    features = encoder.forward_features(x) if encoder.sequence_features else encoder(x)
    return decoder(features)


def _load_builtin() -> None:
    from . import adversarial, contrastive, cross_modal, masked, supervised, visual  # noqa: F401


OBJECTIVES = Registry("objective", _load_builtin)
register_objective = OBJECTIVES.register
list_objectives = OBJECTIVES.names


def create_objective(name: str, encoder: Encoder, spec: InputSpec, task=None, **options) -> Objective:
    """Builds objective ``name`` around ``encoder`` for inputs ``spec``; ``task`` is required by
    supervised pretraining."""
    allowed = OBJECTIVES.info(name).get("modalities")
    if allowed and encoder.modality not in allowed:
        raise ValueError(f"objective {name!r} learns from {' or '.join(allowed)} inputs; encoder "
                         f"{getattr(encoder, 'name', type(encoder).__name__)!r} reads {encoder.modality}")
    return OBJECTIVES.create(name, encoder, spec=encoder_input(encoder.modality, spec), task=task, **options)
