"""Maximum mean discrepancy with a sum of Gaussian kernels (multi-kernel MMD).

Gretton et al., "A Kernel Two-Sample Test", JMLR 2012; Long et al., "Learning Transferable
Features with Deep Adaptation Networks", ICML 2015 (multi-kernel MMD for adaptation); Long et al.,
"Deep Transfer Learning with Joint Adaptation Networks", ICML 2017 (joint MMD over several layers).
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


def heuristic_bandwidths(x: torch.Tensor, y: torch.Tensor, n_kernels: int = 5, multiplier: float = 2.0) -> torch.Tensor:
    """``n_kernels`` bandwidths spaced by ``multiplier`` around the mean pairwise squared distance of
    the pooled sample (the usual median-style heuristic, detached)."""
    joint = torch.cat([x, y])
    base = torch.cdist(joint, joint).pow(2).sum().detach() / (len(joint) ** 2 - len(joint))
    exponents = torch.arange(n_kernels, dtype=x.dtype, device=x.device) - n_kernels // 2
    return base.clamp_min(1e-8) * multiplier ** exponents


def mk_mmd(x: torch.Tensor, y: torch.Tensor, n_kernels: int = 5, multiplier: float = 2.0) -> torch.Tensor:
    """Squared MMD with the :func:`heuristic_bandwidths`."""
    return mmd(x, y, heuristic_bandwidths(x, y, n_kernels, multiplier))


def joint_mmd(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor],
              bandwidths: Sequence[Sequence[float] | torch.Tensor | None]) -> torch.Tensor:
    """Biased squared joint MMD (JAN): the MMD whose kernel is the product over layers of each
    layer's kernel sum, so source and target must match in the layers' joint distribution (e.g.
    features and predictions together). ``xs[l]``, ``ys[l]``: layer ``l`` of the two samples;
    ``bandwidths[l]``: that layer's bandwidths (None: the heuristic)."""
    kernels = {"xx": 1.0, "yy": 1.0, "xy": 1.0}
    for x, y, bw in zip(xs, ys, bandwidths, strict=True):
        bw = heuristic_bandwidths(x, y) if bw is None else bw
        kernels["xx"] = kernels["xx"] * gaussian_kernel_sum(x, x, bw)
        kernels["yy"] = kernels["yy"] * gaussian_kernel_sum(y, y, bw)
        kernels["xy"] = kernels["xy"] * gaussian_kernel_sum(x, y, bw)
    return kernels["xx"].mean() + kernels["yy"].mean() - 2 * kernels["xy"].mean()
