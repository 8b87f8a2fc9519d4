"""Plain convolutional encoders: a small 1D CNN for slow sensor windows and WDCNN for raw vibration.

WDCNN: W. Zhang, G. Peng, C. Li, Y. Chen, Z. Zhang, "A New Deep Learning Model for Fault Diagnosis
with Good Anti-Noise and Domain Adaptation Ability on Raw Vibration Signals", Sensors 17(2), 2017.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.inputs import SeriesInput
from ._base import Encoder, register_encoder


def _block(c_in: int, c_out: int, kernel: int, stride: int = 1, pool: int = 0) -> nn.Sequential:
    layers = [nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0),
              nn.BatchNorm1d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool1d(pool, ceil_mode=True))
    return nn.Sequential(*layers)


class SmallCNN(Encoder):
    """Three 'same'-padded conv blocks; keeps the time axis, so features align with input steps."""

    sequence_features = True

    def __init__(self, c_in: int, seq_len: int, width: int = 64, kernel: int = 5, depth: int = 3,
                 dropout: float = 0.0, pool: str = "mean", out_dim: int | None = None) -> None:
        super().__init__()
        if pool not in ("mean", "last", "flatten"):
            raise ValueError(f"pool must be 'mean', 'last' or 'flatten', not {pool!r}")
        chans = [c_in] + [width] * depth
        self.body = nn.Sequential(*[_block(a, b, kernel) for a, b in zip(chans[:-1], chans[1:])])
        self.dropout = nn.Dropout(dropout)
        self.pool_mode = pool
        # NOTE: "flatten" keeps where in the window a pattern sits (the latest cycles matter most for RUL).
        self.flatten = nn.Sequential(nn.Flatten(), nn.Linear(width * seq_len, out_dim or width), nn.ReLU()) \
            if pool == "flatten" else None
        self.out_dim = (out_dim or width) if pool == "flatten" else width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.body(x))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        if self.pool_mode == "flatten":
            return self.flatten(features)
        return features[:, :, -1] if self.pool_mode == "last" else features.mean(dim=-1)


class WDCNN(Encoder):
    """Wide first kernel (64, stride 16) to see a shaft revolution at once, then small kernels."""

    def __init__(self, c_in: int, seq_len: int, width: int = 64, first_kernel: int = 64, first_stride: int = 16,
                 out_dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _block(c_in, 16, first_kernel, stride=first_stride, pool=2),
            _block(16, 32, 3, pool=2), _block(32, width, 3, pool=2), _block(width, width, 3, pool=2),
            _block(width, width, 3, pool=2),
        )
        self.project = nn.Sequential(nn.AdaptiveAvgPool1d(4), nn.Flatten(), nn.Linear(width * 4, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.body(x))


@register_encoder("cnn_small")
def cnn_small(spec: SeriesInput, **options) -> Encoder:
    return SmallCNN(spec.channels, spec.window, **options)


@register_encoder("wdcnn")
def wdcnn(spec: SeriesInput, **options) -> Encoder:
    return WDCNN(spec.channels, spec.window, **options)
