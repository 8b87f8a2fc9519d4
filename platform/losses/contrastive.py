"""Contrastive losses.

NT-Xent: Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations"
(SimCLR), ICML 2020. InfoNCE: van den Oord et al., "Representation Learning with Contrastive
Predictive Coding", 2018.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalized temperature-scaled cross entropy over ``2N`` views; ``z1[i]`` and ``z2[i]`` are positives.

    Each view's positive competes against the other ``2N - 2`` views of the batch.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def info_nce(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None,
             temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE with explicit positive pairs ``(query[i], positive[i])``.

    Negatives are the other positives of the batch plus, if given, ``negatives [M, d]``.
    """
    q, k = F.normalize(query, dim=1), F.normalize(positive, dim=1)
    logits = q @ k.T
    if negatives is not None:
        logits = torch.cat([logits, q @ F.normalize(negatives, dim=1).T], dim=1)
    targets = torch.arange(len(q), device=q.device)
    return F.cross_entropy(logits / temperature, targets)
