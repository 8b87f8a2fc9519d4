"""Per-group standardization (e.g. per operating condition), fitted on training rows only."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .preprocess import standardize
from .windows import Windows


@dataclass
class GroupNormalizer:
    """Mean and standard deviation per channel for each row group; group -1 holds the global stats."""

    groups: list[int]
    mean: np.ndarray  # [G, C]
    std: np.ndarray  # [G, C]

    @classmethod
    def fit(cls, windows: Windows) -> "GroupNormalizer":
        """Fits on exactly the rows that ``windows`` read (so held-out assets never leak in)."""
        rows = windows.covered_rows()
        values = windows.values[:, rows].astype(np.float64)  # float32 sums drift on values near 2,400
        groups = windows.row_groups[rows] if windows.row_groups is not None else np.zeros(rows.sum(), np.int64)
        names = sorted(set(np.unique(groups).tolist()))
        mean = np.stack([values[:, groups == g].mean(axis=1) for g in names] + [values.mean(axis=1)])
        std = np.stack([values[:, groups == g].std(axis=1) for g in names] + [values.std(axis=1)])
        return cls(groups=names + [-1], mean=mean, std=np.maximum(std, 1e-6))

    def transform(self, windows: Windows) -> Windows:
        """A copy of ``windows`` with standardized values; unseen groups use the global stats."""
        values = standardize(windows.values, "group", mean=self.mean, std=self.std,
                             known=np.asarray(self.groups[:-1], np.int64), groups=windows.row_groups)
        return replace(windows, values=values)

    def to_dict(self) -> dict:
        return {"groups": self.groups, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "GroupNormalizer":
        return cls(groups=list(data["groups"]), mean=np.asarray(data["mean"], np.float64),
                   std=np.asarray(data["std"], np.float64))
