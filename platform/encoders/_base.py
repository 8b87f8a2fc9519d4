"""The encoder contract and the name → builder registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_ENCODERS: dict[str, Callable[..., "Encoder"]] = {}


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


def register_encoder(name: str) -> Callable:
    """Decorator: registers ``builder(c_in, seq_len, **options) -> Encoder`` under ``name``."""
    def wrap(builder: Callable[..., Encoder]) -> Callable[..., Encoder]:
        if name in _ENCODERS:
            raise ValueError(f"encoder {name!r} is registered twice")
        _ENCODERS[name] = builder
        return builder
    return wrap


def list_encoders() -> list[str]:
    _load_builtin()
    return sorted(_ENCODERS)


def create_encoder(name: str, c_in: int, seq_len: int, **options) -> Encoder:
    """Builds encoder ``name`` for ``c_in`` channels and windows of ``seq_len``.

    Options left as None keep the preset's value.
    """
    _load_builtin()
    try:
        builder = _ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(sorted(_ENCODERS))}") from None
    encoder = builder(c_in, seq_len, **{k: v for k, v in options.items() if v is not None})
    encoder.name = name
    return encoder


def _load_builtin() -> None:
    from . import conv, recurrent, tsai_backbones  # noqa: F401  (registration side effects)
