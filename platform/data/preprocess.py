"""The one preprocessing of model input, chosen by the input spec's ``normalize``: training (cutting
windows, fitting and applying group statistics) and serving (raw windows from a request) both call
:func:`standardize`, so what a model sees in production is what it saw in training.

Needs numpy only (the serving path imports it without the catalog or torch).
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
