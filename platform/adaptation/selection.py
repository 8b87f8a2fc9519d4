"""Label-free model selection for unsupervised adaptation: never looks at target labels.

* Source-validation risk: the task loss on held-out source assets.
* DEV (You et al., "Towards Accurate Model Selection in Deep Unsupervised Domain Adaptation",
  ICML 2019): source-validation losses weighted by the density ratio target/source, estimated by a
  logistic domain classifier on features, with a control variate to reduce variance.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def density_ratio(f_source: torch.Tensor, f_target: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """w(x) = p_target(x) / p_source(x) at each source feature row, via logistic regression."""
    x = torch.cat([f_source, f_target]).detach().float()
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / std
    y = torch.cat([torch.zeros(len(f_source)), torch.ones(len(f_target))])
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y) + 1e-3 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        p = torch.sigmoid(x[: len(f_source)] @ w + b).clamp(1e-4, 1 - 1e-4)
        return (p / (1 - p)) * (len(f_source) / len(f_target))


def dev_risk(losses: torch.Tensor, weights: torch.Tensor) -> float:
    """Deep Embedded Validation risk from per-sample source-validation losses and density ratios."""
    wl = weights * losses
    var_w = weights.var()
    eta = -torch.cov(torch.stack([wl, weights]))[0, 1] / var_w if var_w > 0 else torch.tensor(0.0)
    return float(wl.mean() + eta * weights.mean() - eta)
