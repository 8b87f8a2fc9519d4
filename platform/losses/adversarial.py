"""Gradient reversal and a domain discriminator (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016),
and the conditioning of CDAN (Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018)."""

from __future__ import annotations

import math

import torch
from torch import nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-coeff`` backward."""
    return _ReverseGrad.apply(x, coeff)


def dann_schedule(progress: float, gamma: float = 10.0) -> float:
    """The usual adaptation weight ramp ``2 / (1 + exp(-gamma * p)) - 1`` for progress ``p`` in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class Discriminator(nn.Module):
    """An MLP giving one logit per sample (e.g. source vs target, prior vs encoded)."""

    def __init__(self, in_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def multilinear_map(features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """CDAN's conditioning: the flattened outer product ``f ⊗ g`` of features ``[n, d]`` and
    predictions ``[n, c]`` (``[n, d * c]``), so the discriminator sees which class a feature is
    predicted as, not only where it lies."""
    return torch.bmm(predictions.unsqueeze(2), features.unsqueeze(1)).flatten(1)


class RandomizedMultilinear(nn.Module):
    """CDAN's randomized multilinear map for wide ``d * c``: ``(f R_f) ⊙ (g R_g) / sqrt(dim)`` with
    fixed Gaussian matrices, an unbiased estimate of the outer product's inner products."""

    def __init__(self, feature_dim: int, n_outputs: int, dim: int = 1024, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("r_f", torch.randn(feature_dim, dim, generator=g))
        self.register_buffer("r_g", torch.randn(n_outputs, dim, generator=g))
        self.dim = dim

    def forward(self, features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        return (features @ self.r_f) * (predictions @ self.r_g) / math.sqrt(self.dim)


def certainty_weights(probabilities: torch.Tensor) -> torch.Tensor:
    """CDAN+E's entropy conditioning: ``1 + exp(-H(g))`` per sample, scaled to mean 1, so confident
    predictions weigh more in the domain loss than uncertain ones."""
    entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(-1)
    weights = 1.0 + torch.exp(-entropy)
    return weights / weights.mean()
