"""Pixel anomaly maps as pictures: a heat colour map, and overlays on the image (numpy and Pillow only)."""

from __future__ import annotations

import base64
import io

import numpy as np


def heat_rgb(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """``[H, W]`` map → ``[H, W, 3]`` uint8: black at ``low`` (a typical defect-free patch) and
    below, through red and yellow, to white at ``high`` (the decision threshold) and above."""
    v = np.clip((pixels - low) / max(high - low, 1e-12), 0.0, 1.0)
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def png_base64(rgb: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def heatmap_png(pixels: np.ndarray, low: float, high: float) -> str:
    """A pixel anomaly map as a base64 PNG (see :func:`heat_rgb`)."""
    return png_base64(heat_rgb(pixels, low, high))


def overlay(image: np.ndarray, pixels: np.ndarray, low: float, high: float, alpha: float = 0.7) -> np.ndarray:
    """The heat map blended over ``image`` (``[H, W]`` or ``[H, W, 3]`` uint8 at the map's size),
    the more opaque the hotter: a typical defect-free region shows the image itself."""
    base = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    weight = alpha * np.clip((pixels - low) / max(high - low, 1e-12), 0.0, 1.0)[..., None]
    return (base * (1 - weight) + heat_rgb(pixels, low, high) * weight).astype(np.uint8)
