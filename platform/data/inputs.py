"""Input specs: what a model takes, per modality, stored with every run and registry entry.

An :class:`InputSpec` maps input names to their modality's spec: the modality's own name
(``series``, ``image``, ``text``, ``tabular``) for a model with one input of each, any other name
(``de``, ``fe``, ``camera``) for a multimodal model with several inputs of one modality. Training, export and serving all build their preprocessing from it
(:func:`transferline.data.preprocess.preprocess`), so the three cannot drift apart. Specs are plain
data (JSON round trip through :meth:`InputSpec.to_dict` / :meth:`InputSpec.from_dict`) and need
numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

import numpy as np

MODALITIES = ("series", "image", "text", "tabular")
PRESENT = "present"  # the input of a model of several inputs saying which ones each sample has ([B, M] bool)


@dataclass(frozen=True)
class SeriesInput:
    """Windows of sensor signals: ``[batch, channels, window]`` into the model.

    Args:
        channels: number of signals.
        window: time steps per window.
        signals: signal names in channel order (empty: unnamed, e.g. one raw waveform).
        normalize: ``"group"`` (statistics per row group, fitted on training rows), ``"window"``
            (each window on its own) or ``"none"``; see :func:`~transferline.data.preprocess.standardize`.
        group_by: what defines a row's group under ``"group"`` (e.g. ``operating_condition``).
        normalizer: the fitted group statistics (``groups``, ``mean``, ``std``) under ``"group"``.
    """

    modality: ClassVar[str] = "series"
    channels: int
    window: int
    signals: tuple[str, ...] = ()
    normalize: str = "window"
    group_by: str | None = None
    normalizer: dict | None = None

    def example(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        """A model input of this shape (already preprocessed), e.g. to trace an export."""
        return np.random.default_rng(seed).standard_normal((batch, self.channels, self.window)).astype(np.float32)


@dataclass(frozen=True)
class ImageInput:
    """Images: ``[batch, channels, height, width]`` into the model.

    Args:
        size: ``(height, width)`` the model takes.
        channels: 1 (grayscale) or 3 (RGB); grayscale images are repeated to 3 channels if needed.
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel standard deviation divided by after that.
        resize: ``"stretch"`` (to ``size`` ignoring aspect), ``"crop"`` (shorter side to size, then
            centre crop) or ``"pad"`` (longer side to size, then pad with the mean).
        standardize: then shift and scale each channel of each image to zero mean and unit standard
            deviation, so that images of one surface taken at different exposures and gains look
            alike (``mean`` and ``std`` no longer matter then).
    """

    modality: ClassVar[str] = "image"
    size: tuple[int, int] = (224, 224)
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    resize: str = "stretch"
    standardize: bool = False

    def example(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((batch, self.channels, *self.size)).astype(np.float32)


@dataclass(frozen=True)
class TextInput:
    """Text: token ids ``[batch, max_length]`` from ``tokenizer`` (a Hugging Face name or folder)."""

    modality: ClassVar[str] = "text"
    tokenizer: str = "hf/all-minilm-l6-v2"
    max_length: int = 128

    def example(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 1000, (batch, self.max_length)).astype(np.int64)


@dataclass(frozen=True)
class TabularInput:
    """Rows of named numeric columns: ``[batch, len(columns)]``, standardized by ``mean`` and
    ``std`` (one per column, fitted on training rows) where they are given."""

    modality: ClassVar[str] = "tabular"
    columns: tuple[str, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def example(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((batch, len(self.columns))).astype(np.float32)


SPEC_TYPES = {cls.modality: cls for cls in (SeriesInput, ImageInput, TextInput, TabularInput)}
ModalitySpec = SeriesInput | ImageInput | TextInput | TabularInput


@dataclass(frozen=True)
class InputSpec:
    """The inputs of one model: input name → its modality's spec (the name is the modality's own
    for single-modality models, e.g. ``{"series": SeriesInput(...)}``)."""

    modalities: dict[str, ModalitySpec] = field(default_factory=dict)

    @classmethod
    def of(cls, *specs: ModalitySpec) -> "InputSpec":
        return cls({s.modality: s for s in specs})

    def __getitem__(self, modality: str) -> ModalitySpec:
        try:
            return self.modalities[modality]
        except KeyError:
            raise ValueError(f"this model takes {', '.join(self.modalities) or 'no inputs'}, not {modality!r}") \
                from None

    def __contains__(self, modality: str) -> bool:
        return modality in self.modalities

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def only(self) -> ModalitySpec:
        """The spec of a single-modality model."""
        if len(self.modalities) != 1:
            raise ValueError(f"expected one modality, the model takes {self.names}")
        return next(iter(self.modalities.values()))

    def to_dict(self) -> dict:
        """Plain data; an input named other than its modality also records the modality."""
        return {name: {**({"modality": s.modality} if name != s.modality else {}), **_plain(asdict(s))}
                for name, s in self.modalities.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        """Reads :meth:`to_dict`'s form; raises ValueError naming an unknown modality or field."""
        specs = {}
        for name, values in data.items():
            values = dict(values)
            modality = values.pop("modality", name)
            if modality not in SPEC_TYPES:
                raise ValueError(f"input spec {name}: unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
            spec_cls = SPEC_TYPES[modality]
            known = {f.name for f in fields(spec_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"input spec {name}: unknown field(s) {unknown}; known: {sorted(known)}")
            specs[name] = spec_cls(**{k: tuple(v) if isinstance(v, list) and k != "normalizer" else v
                                      for k, v in values.items()})
        return cls(specs)


def _plain(value):
    """Tuples → lists, recursively, so a spec's dict is what JSON gives back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
