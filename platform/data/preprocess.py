"""The one preprocessing of model input, built from the input spec (:func:`build_preprocess`):
training (cutting windows, fitting and applying group statistics; decoding catalog images),
export and serving (raw windows or images from a request) all go through it, so what a model sees
in production is what it saw in training. Series use :func:`standardize`, chosen by the spec's
``normalize``; images :class:`ImagePreprocess` (resize policy, scale, mean/std, per-image
standardization).

Needs numpy (and Pillow for images) only: the serving path imports it without the catalog or torch.
"""

from __future__ import annotations

import numpy as np

MODES = ("group", "window", "none")
EPS = 1e-6  # added to each window's standard deviation under "window"


def standardize(x: np.ndarray, normalize: str, *, mean: np.ndarray | None = None, std: np.ndarray | None = None,
                known: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """Values ``x[..., C, L]`` → float32 model input.

    Args:
        x: raw values, channels before time.
        normalize: ``"window"`` (each window and channel to zero mean, unit spread over time),
            ``"group"`` (per-row statistics of the row's group: ``mean``/``std`` ``[G + 1, C]``, the
            last row global, for the group ids ``known`` ``[G]``), or ``"none"``.
        groups: each row's group id ``[..., L]``; unseen ids (or none given) use the global row.
    """
    if normalize not in MODES:
        raise ValueError(f"normalize must be one of {MODES}, not {normalize!r}")
    x = np.asarray(x, np.float64)
    if normalize == "window":
        x = (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + EPS)
    elif normalize == "group":
        if mean is None or std is None:
            raise ValueError("normalize='group' needs the fitted mean and std")
        rows = group_rows(groups if groups is not None else np.zeros(x.shape[:-2] + x.shape[-1:], np.int64),
                          np.asarray(known if known is not None else [], np.int64), len(mean) - 1)
        x = (x - np.moveaxis(mean[rows], -1, -2)) / np.moveaxis(std[rows], -1, -2)
    return np.ascontiguousarray(x, dtype=np.float32)


def group_rows(groups: np.ndarray, known: np.ndarray, fallback: int) -> np.ndarray:
    """Row index into the statistics of each group id: its position in sorted ``known``, or
    ``fallback`` (the global statistics) for an id not seen in training."""
    groups = np.asarray(groups, np.int64)
    if not len(known):
        return np.full(groups.shape, fallback)
    pos = np.minimum(np.searchsorted(known, groups), len(known) - 1)
    return np.where(known[pos] == groups, pos, fallback)


class SeriesPreprocess:
    """Raw windows ``[B, C, L]`` (and their rows' groups) → model input, per a :class:`SeriesInput`."""

    def __init__(self, spec) -> None:
        self.spec = spec
        norm = spec.normalizer if spec.normalize == "group" else None
        if spec.normalize == "group" and not norm:
            raise ValueError("a series input normalized per group needs its fitted normalizer")
        self.mean = np.asarray(norm["mean"], np.float64) if norm else None
        self.std = np.asarray(norm["std"], np.float64) if norm else None
        self.known = np.asarray(norm["groups"][:-1], np.int64) if norm else None

    def __call__(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        return standardize(x, self.spec.normalize, mean=self.mean, std=self.std, known=self.known, groups=groups)


class ImagePreprocess:
    """Images (encoded bytes or decoded ``[H, W]`` / ``[H, W, C]`` uint8 arrays) → model input
    ``[B, C, H, W]`` float32, per an :class:`ImageInput`: resize by its policy, scale to [0, 1],
    subtract ``mean`` and divide by ``std`` per channel, and with ``standardize`` bring each channel
    of each image to zero mean and unit standard deviation (before any padding)."""

    RESIZE = ("stretch", "crop", "pad")

    def __init__(self, spec) -> None:
        if spec.resize not in self.RESIZE:
            raise ValueError(f"image resize must be one of {self.RESIZE}, not {spec.resize!r}")
        if spec.channels not in (1, 3) or len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
            raise ValueError(f"image input: channels 1 or 3 with one mean and std each, got channels={spec.channels}, "
                             f"mean={list(spec.mean)}, std={list(spec.std)}")
        if not isinstance(spec.standardize, bool):
            raise ValueError(f"image standardize: true or false, not {spec.standardize!r}")
        self.spec = spec
        self.mean = np.asarray(spec.mean, np.float32)[:, None, None]
        self.std = np.asarray(spec.std, np.float32)[:, None, None]

    def __call__(self, images) -> np.ndarray:
        return np.stack([self.one(img) for img in images]) if len(images) else \
            np.zeros((0, self.spec.channels, *self.spec.size), np.float32)

    def geometry(self, width: int, height: int) -> tuple[float, float, float, float]:
        """``(sx, sy, dx, dy)``: a point ``(x, y)`` of an original ``width`` x ``height`` image lies at
        ``(x * sx + dx, y * sy + dy)`` in the model input (what boxes go through with their image)."""
        h, w = self.spec.size
        if self.spec.resize == "stretch":
            return w / width, h / height, 0.0, 0.0
        scale = (max if self.spec.resize == "crop" else min)(h / height, w / width)
        rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
        top, left = max(0, (rh - h) // 2), max(0, (rw - w) // 2)  # as _fit crops, then pads
        return rw / width, rh / height, (w - min(rw, w)) // 2 - left, (h - min(rh, h)) // 2 - top

    def one(self, image) -> np.ndarray:
        from PIL import Image

        img = _to_pil(image).convert("L" if self.spec.channels == 1 else "RGB")
        h, w = self.spec.size
        if self.spec.resize == "stretch":
            img = img.resize((w, h), Image.BILINEAR)
        else:
            scale = (max if self.spec.resize == "crop" else min)(h / img.height, w / img.width)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        x = np.asarray(img, np.float32) / 255.0
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        x = (x - self.mean) / self.std
        if self.spec.standardize:  # per channel; a flat channel becomes zeros rather than noise / ~0
            x = x.astype(np.float64)
            x = (x - x.mean((1, 2), keepdims=True)) / np.maximum(x.std((1, 2), keepdims=True), 1e-3)
        return np.ascontiguousarray(_fit(x, h, w), dtype=np.float32)


def _to_pil(image):
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        import io

        img = Image.open(io.BytesIO(bytes(image)))
        img.load()
        return img
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"an image array must be uint8 [H, W] or [H, W, 1|3|4], got {arr.dtype} {list(arr.shape)}")
    return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)


def _fit(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Centre-crops or zero-pads (zero is the mean after normalization) ``x [C, H', W']`` to ``[C, h, w]``."""
    c, hh, ww = x.shape
    top, left = max(0, (hh - h) // 2), max(0, (ww - w) // 2)
    x = x[:, top:top + h, left:left + w]
    out = np.zeros((c, h, w), np.float32)
    oy, ox = (h - x.shape[1]) // 2, (w - x.shape[2]) // 2
    out[:, oy:oy + x.shape[1], ox:ox + x.shape[2]] = x
    return out


class TextPreprocess:
    """Texts → token ids ``[B, max_length]`` (int64), padded with the tokenizer's pad id and cut at
    ``max_length``; the tokenizer is the spec's (a shipped model, a folder, or a hub id), run by the
    ``tokenizers`` library from its ``tokenizer.json`` where there is one (no transformers)."""

    def __init__(self, spec) -> None:
        from .hf import load_ids_tokenizer

        self.spec = spec
        self.tokenize = load_ids_tokenizer(spec.tokenizer, spec.max_length)

    def __call__(self, texts: list[str]) -> np.ndarray:
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise ValueError(f"text {bad[0]} is {type(texts[bad[0]]).__name__}, not a string")
        return np.ascontiguousarray(self.tokenize(list(texts)), dtype=np.int64)


def standardize_rows(rows: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """Tabular rows ``[B, C]`` → float32, standardized per column where ``mean``/``std`` are given."""
    x = np.asarray(rows, np.float64)
    if mean is not None and len(mean):
        x = (x - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    return np.ascontiguousarray(x, dtype=np.float32)


class TabularPreprocess:
    """Rows ``[B, C]`` → float32, standardized by the spec's column statistics where it has them."""

    def __init__(self, spec) -> None:
        self.mean, self.std = spec.mean, spec.std

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return standardize_rows(rows, self.mean, self.std)


PREPROCESS = {"series": SeriesPreprocess, "image": ImagePreprocess, "text": TextPreprocess,
              "tabular": TabularPreprocess}


def build_preprocess(spec):
    """The preprocessing of one modality's input spec (training, export and serving use this)."""
    try:
        return PREPROCESS[spec.modality](spec)
    except KeyError:
        raise ValueError(f"no preprocessing for {spec.modality!r} inputs yet") from None
