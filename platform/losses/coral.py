"""CORAL: distance between feature covariances (Sun & Saenko, "Deep CORAL", ECCV-W 2016)."""

from __future__ import annotations

import torch


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of rows ``x [n, d]``."""
    centered = x - x.mean(0, keepdim=True)
    return centered.T @ centered / (len(x) - 1)


def coral(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||C_x - C_y||_F^2 / (4 d^2)``."""
    d = x.shape[1]
    return (covariance(x) - covariance(y)).pow(2).sum() / (4 * d * d)
