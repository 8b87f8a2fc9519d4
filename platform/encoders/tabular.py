"""Encoders of tabular inputs: a row of named numeric columns ``[B, C]`` → features."""

from __future__ import annotations

import torch
from torch import nn

from ..data.inputs import TabularInput
from ._base import Encoder, register_encoder


class TabularMLP(Encoder):
    """Two layers with layer norm; the columns arrive standardized (by the input's fitted statistics)."""

    modality = "tabular"

    def __init__(self, n_columns: int, hidden: int = 64, out_dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_columns, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, out_dim), nn.GELU())
        self.out_dim = out_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"a tabular encoder takes rows [batch, columns], not a tensor of shape {tuple(x.shape)}")
        return self.body(x)


@register_encoder("mlp", modality="tabular")
def mlp(spec: TabularInput, **options) -> Encoder:
    return TabularMLP(len(spec.columns), **options)
