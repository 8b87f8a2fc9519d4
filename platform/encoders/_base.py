"""The encoder contract and the name → builder registry."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


class Encoder(nn.Module):
    """Maps windows ``[B, C, L]`` to features.

    Subclasses set ``out_dim`` (size of the pooled features) and ``sequence_features`` (whether
    :meth:`forward_features` keeps the time axis at the input length ``L``).
    """

    out_dim: int
    sequence_features: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled features: ``[B, D, L]`` when ``sequence_features``, else ``[B, out_dim]``."""
        raise NotImplementedError

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=-1) if features.dim() == 3 else features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, out_dim]``."""
        return self.pool(self.forward_features(x))


def _load_builtin() -> None:
    from . import conv, recurrent, tsai_backbones  # noqa: F401  (registration side effects)


ENCODERS = Registry("encoder", _load_builtin)
register_encoder = ENCODERS.register
list_encoders = ENCODERS.names


def create_encoder(name: str, c_in: int, seq_len: int, **options) -> Encoder:
    """Builds encoder ``name`` for ``c_in`` channels and windows of ``seq_len``.

    Options left as None keep the preset's value.
    """
    encoder = ENCODERS.create(name, c_in, seq_len, **options)
    encoder.name = name
    return encoder
