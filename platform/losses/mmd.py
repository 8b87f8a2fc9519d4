"""Maximum mean discrepancy with a sum of Gaussian kernels (multi-kernel MMD).

Gretton et al., "A Kernel Two-Sample Test", JMLR 2012; Long et al., "Learning Transferable
Features with Deep Adaptation Networks", ICML 2015 (multi-kernel MMD for adaptation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def gaussian_kernel_sum(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``sum_k exp(-||a_i - b_j||^2 / bandwidth_k)`` for every pair, shape ``[len(a), len(b)]``."""
    d2 = torch.cdist(a, b).pow(2)
    bw = torch.as_tensor(bandwidths, dtype=a.dtype, device=a.device)
    return torch.exp(-d2.unsqueeze(0) / bw.view(-1, 1, 1)).sum(0)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Biased estimate of squared MMD between samples ``x [n, d]`` and ``y [m, d]``."""
    return (gaussian_kernel_sum(x, x, bandwidths).mean() + gaussian_kernel_sum(y, y, bandwidths).mean()
            - 2 * gaussian_kernel_sum(x, y, bandwidths).mean())


def mk_mmd(x: torch.Tensor, y: torch.Tensor, n_kernels: int = 5, multiplier: float = 2.0) -> torch.Tensor:
    """Squared MMD with ``n_kernels`` bandwidths spaced by ``multiplier`` around the mean pairwise
    squared distance of the pooled sample (the usual median-style heuristic, detached)."""
    joint = torch.cat([x, y])
    base = torch.cdist(joint, joint).pow(2).sum().detach() / (len(joint) ** 2 - len(joint))
    exponents = torch.arange(n_kernels, dtype=x.dtype, device=x.device) - n_kernels // 2
    return mmd(x, y, base.clamp_min(1e-8) * multiplier ** exponents)
