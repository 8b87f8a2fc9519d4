"""A stacked LSTM encoder, the feature extractor of most C-MAPSS adaptation work (e.g. CADA, ADARUL)."""

from __future__ import annotations

import torch
from torch import nn

from ..data.inputs import SeriesInput
from ._base import Encoder, register_encoder


class LSTMEncoder(Encoder):
    """LSTM over time; pooled features are the last step's hidden state (bidirectional: both ends)."""

    sequence_features = True

    def __init__(self, c_in: int, seq_len: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1,
                 bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = nn.LSTM(c_in, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0,
                           bidirectional=bidirectional)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.transpose(1, 2))  # [B, L, D]
        return out.transpose(1, 2)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, :, -1]


@register_encoder("lstm")
def lstm(spec: SeriesInput, **options) -> Encoder:
    return LSTMEncoder(spec.channels, spec.window, **options)
