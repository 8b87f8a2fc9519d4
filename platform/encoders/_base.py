"""The encoder contract and the name → builder registry.

Names carry their family: ``tsai/inception_time`` is built by tsai, ``timm/...`` by timm,
``hf/...`` by transformers; transferline's own encoders have plain names (``cnn_small``). The
names used before families (``inception_time``, ``resnet``, ...) still work as aliases.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..data.inputs import InputSpec, ModalitySpec
from ..registry import Registry


class Encoder(nn.Module):
    """Maps one modality's input (a tensor, or a dict of modalities it picks its own from) to features.

    Subclasses set ``out_dim`` (size of the pooled features), ``modality`` (the input it reads) and
    ``sequence_features`` (whether :meth:`forward_features` keeps the time axis at the input length).
    """

    out_dim: int
    modality: str = "series"
    sequence_features: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled features: ``[B, D, L]`` when ``sequence_features``, else ``[B, out_dim]``."""
        raise NotImplementedError

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=-1) if features.dim() == 3 else features

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features ``[B, out_dim]``."""
        if isinstance(x, Mapping):
            x = x[self.modality]
        return self.pool(self.forward_features(x))


def _load_builtin() -> None:
    from . import (conv, fusion, hf_text, recurrent, spectrogram, tabular, timm_backbones,  # noqa: F401
                   tsai_backbones)  # (registration side effects)


ENCODERS = Registry("encoder", _load_builtin)
list_encoders = ENCODERS.names
encoder_name = ENCODERS.canonical
known_encoder = ENCODERS.known


def register_encoder(name: str, modality: str = "series", aliases: tuple[str, ...] = ()):
    """Decorator registering an encoder builder ``builder(spec, **options)`` for ``modality`` inputs."""
    return ENCODERS.register(name, aliases=aliases, modality=modality)


def encoder_modality(name: str) -> str:
    return ENCODERS.info(name)["modality"]


def encoder_input(modality: str, spec: InputSpec) -> InputSpec | ModalitySpec:
    """What an encoder reading ``modality`` takes from ``spec``: that modality's entry, or the whole
    spec for an encoder of several inputs (modality ``multi``, e.g. ``fusion``)."""
    return spec if modality == "multi" else spec[modality]


def create_encoder(name: str, spec: InputSpec | ModalitySpec, **options) -> Encoder:
    """Builds encoder ``name`` for the inputs ``spec`` describes (an :class:`InputSpec`, whose
    entry for the encoder's modality is used, or that modality's spec itself).

    Options left as None keep the preset's value. An encoder of several inputs (``fusion``, modality
    ``multi``) takes the whole :class:`InputSpec`.
    """
    modality = encoder_modality(name)
    if isinstance(spec, InputSpec):
        spec = encoder_input(modality, spec)
    elif modality == "multi":
        raise ValueError(f"encoder {name!r} fuses several inputs: it takes an input spec with named inputs")
    if modality != "multi" and spec.modality != modality:
        raise ValueError(f"encoder {name!r} takes {modality} inputs, not {spec.modality}")
    encoder = ENCODERS.create(name, spec, **options)
    encoder.name = encoder_name(name)
    encoder.modality = modality
    return encoder
