"""Images in prediction requests: base64-encoded PNG/JPEG files or raw pixel arrays, checked and
decoded here (sizes read from the header before any pixel is decoded), then preprocessed by the
model's input spec like in training."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

FORMATS = {"PNG", "JPEG", "BMP", "TIFF"}
MAX_SIDE = 4096  # pixels per side of a request image
MIN_SIDE = 8


def decode_images(request, error) -> list:
    """The request's images as Pillow images (``images``) or uint8 arrays (``pixels``); ``error(loc,
    message)`` builds the exception naming the bad field."""
    if request.images is not None and request.pixels is not None:
        raise error(["body", "images"], "send images or pixels, not both")
    if request.images is not None:
        if not request.images:
            raise error(["body", "images"], "no images")
        return [_from_base64(text, i, error) for i, text in enumerate(request.images)]
    if request.pixels is not None:
        if not request.pixels:
            raise error(["body", "pixels"], "no images")
        return [_from_pixels(p, i, error) for i, p in enumerate(request.pixels)]
    raise error(["body", "images"], "this model takes images: send images (base64 PNG/JPEG) or pixels "
                                    "([batch][height][width] or [batch][height][width][channel], 0-255)")


def _from_base64(text: str, i: int, error):
    from PIL import Image

    loc = ["body", "images", i]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(loc, "not base64") from None
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:  # Pillow raises several types for data that is no image
        raise error(loc, f"not an image file ({', '.join(sorted(FORMATS))})") from None
    if img.format not in FORMATS:
        raise error(loc, f"{img.format} images are not taken; send {', '.join(sorted(FORMATS))}")
    _check_size(img.width, img.height, loc, error)
    try:
        img.load()
    except Exception as exc:  # truncated or corrupt pixel data
        raise error(loc, f"corrupt {img.format} ({str(exc)[:80]})") from None
    return img


def _from_pixels(pixels, i: int, error) -> np.ndarray:
    loc = ["body", "pixels", i]
    try:
        arr = np.asarray(pixels, dtype=np.int64)
    except (ValueError, OverflowError):
        raise error(loc, "ragged: every row needs the same width (and every pixel the same channels)") from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise error(loc, f"shape {list(arr.shape)}; expected [height][width] or [height][width][1 or 3]")
    _check_size(arr.shape[1], arr.shape[0], loc, error)
    bad = (arr < 0) | (arr > 255)
    if bad.any():
        where = [int(v) for v in np.argwhere(bad)[0]]
        raise error([*loc, *where], f"{int(arr[tuple(where)])} is not a pixel value 0-255")
    return arr.astype(np.uint8)


def _check_size(width: int, height: int, loc: list, error) -> None:
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise error(loc, f"{width}x{height} pixels; each side must be {MIN_SIDE} to {MAX_SIDE}")
