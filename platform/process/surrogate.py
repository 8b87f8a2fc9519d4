"""The quality surrogate: a deep ensemble that maps set-points (and optional run features) to every
outcome at once, with the spread of its members as the uncertainty.

Each member is a small MLP trained on its own bootstrap resample of the runs (Lakshminarayanan
et al., 2017); binary outcomes get a logistic output, numeric ones a mean and a variance (Gaussian
likelihood). All members live in one module with stacked weights, so the whole ensemble is one
TorchScript export and one BoTorch model (:class:`~botorch.models.ensemble.EnsembleModel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .table import Outcome, ProcessData


@dataclass(frozen=True)
class SurrogateConfig:
    """Ensemble size, member width, full-batch AdamW steps, and whether members see bootstrap resamples."""

    members: int = 16
    hidden: int = 16
    epochs: int = 300
    lr: float = 0.01
    weight_decay: float = 0.01
    bootstrap: bool = True
    seed: int = 0


class EnsembleMLP(nn.Module):
    """Raw inputs ``[n, d]`` → ``[members, n, outcomes, 2]``: per member and outcome the
    value (a probability for binary outcomes, a value in data units for numeric ones) and its
    variance (0 for binary outcomes)."""

    def __init__(self, d: int, binary: list[bool], members: int, hidden: int, x_mean: np.ndarray, x_std: np.ndarray,
                 y_mean: np.ndarray, y_std: np.ndarray) -> None:
        super().__init__()
        k = len(binary)
        shapes = {"w1": (members, d, hidden), "b1": (members, 1, hidden), "w2": (members, hidden, hidden),
                  "b2": (members, 1, hidden), "w3": (members, hidden, 2 * k), "b3": (members, 1, 2 * k)}
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        for name, fan_in in (("w1", d), ("w2", hidden), ("w3", hidden)):
            nn.init.uniform_(getattr(self, name), -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        as_buffer = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.register_buffer("x_mean", as_buffer(x_mean))
        self.register_buffer("x_std", as_buffer(x_std))
        self.register_buffer("y_mean", as_buffer(y_mean))
        self.register_buffer("y_std", as_buffer(y_std))
        self.register_buffer("binary", torch.tensor(binary, dtype=torch.bool))

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardized means (logits for binary outcomes) and log-variances, ``[members, ..., n, k]``."""
        z = ((x - self.x_mean) / self.x_std).unsqueeze(0)  # [1, ..., n, d]
        flat = z.reshape(1, -1, z.shape[-1])
        h = torch.relu(torch.bmm(flat.expand(self.w1.shape[0], -1, -1), self.w1) + self.b1)
        h = torch.relu(torch.bmm(h, self.w2) + self.b2)
        out = torch.bmm(h, self.w3) + self.b3
        out = out.reshape(self.w1.shape[0], *x.shape[:-1], out.shape[-1])
        k = self.binary.shape[0]
        return out[..., :k], out[..., k:].clamp(-10.0, 6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.raw(x)
        value = torch.where(self.binary, torch.sigmoid(mean), mean * self.y_std + self.y_mean)
        var = torch.where(self.binary, torch.zeros_like(mean), log_var.exp() * self.y_std ** 2)
        return torch.stack([value, var], dim=-1)


def fit_surrogate(data: ProcessData, config: SurrogateConfig = SurrogateConfig(), rows: np.ndarray | None = None,
                  features: np.ndarray | None = None, members: range | None = None) -> EnsembleMLP:
    """Trains the ensemble on ``rows`` of ``data`` (all runs by default); ``features`` ``[runs, f]``
    are appended to the set-points as further inputs (e.g. an encoder's embedding of each run's
    first seconds of signals). ``members`` trains only those members (a share of the work, see
    :func:`merge`): each member's initial weights and resample depend on the seed and its index
    alone, so the ensemble is the same however its members are shared out."""
    rows = np.arange(len(data.runs)) if rows is None else np.asarray(rows)
    X = data.X if features is None else np.concatenate([data.X, features], axis=1)
    X, Y = X[rows], data.Y[rows]
    binary = [o.kind == "binary" for o in data.outcomes]
    x_mean, x_std = X.mean(0), X.std(0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean = np.where(binary, 0.0, np.nanmean(Y, axis=0))
    y_std = np.where(binary, 1.0, np.nan_to_num(np.nanstd(Y, axis=0), nan=1.0))
    y_std = np.where(y_std > 0, y_std, 1.0)
    members = members if members is not None else range(config.members)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        full = EnsembleMLP(X.shape[1], binary, config.members, config.hidden, x_mean, x_std, y_mean, y_std)
    model = select(full, members)
    x = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(np.nan_to_num((Y - y_mean) / y_std), dtype=torch.float32)
    observed = torch.as_tensor(~np.isnan(Y), dtype=torch.float32)
    n = len(rows)
    counts = []
    for m in members:  # each member sees its own resample: how often each run is drawn
        gen = torch.Generator().manual_seed(config.seed * 100_003 + m)
        counts.append(torch.bincount(torch.randint(n, (n,), generator=gen), minlength=n).float()
                      if config.bootstrap else torch.ones(n))
    weight = torch.stack(counts).unsqueeze(-1) * observed  # [members, n, k]
    per_member = weight.sum(dim=(1, 2)).clamp_min(1.0)
    is_binary = torch.tensor(binary)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for _ in range(config.epochs):
        mean, log_var = model.raw(x)
        target = y.expand_as(mean)
        bce = F.binary_cross_entropy_with_logits(mean, target, reduction="none")
        nll = 0.5 * (log_var + (target - mean) ** 2 / log_var.exp())
        loss = ((torch.where(is_binary, bce, nll) * weight).sum(dim=(1, 2)) / per_member).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


_PARAMS = ("w1", "b1", "w2", "b2", "w3", "b3")


def from_state(state: dict[str, torch.Tensor]) -> EnsembleMLP:
    """The ensemble whose ``state_dict`` is ``state`` (sizes from its tensors)."""
    members, d, hidden = state["w1"].shape
    model = EnsembleMLP(d, state["binary"].tolist(), members, hidden, state["x_mean"].numpy(), state["x_std"].numpy(),
                        state["y_mean"].numpy(), state["y_std"].numpy())
    model.load_state_dict(state)
    return model.eval()


def select(model: EnsembleMLP, members: range) -> EnsembleMLP:
    """A copy of ``model`` holding only ``members``."""
    import copy

    out = copy.deepcopy(model)
    for name in _PARAMS:
        setattr(out, name, nn.Parameter(getattr(model, name).detach()[members.start:members.stop].clone()))
    return out


def merge(parts: list[EnsembleMLP]) -> EnsembleMLP:
    """One ensemble from shares of its members, in order."""
    import copy

    out = copy.deepcopy(parts[0])
    for name in _PARAMS:
        setattr(out, name, nn.Parameter(torch.cat([getattr(p, name).detach() for p in parts])))
    return out.eval()


@torch.no_grad()
def predict(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """``[n, members, k, 2]`` for inputs ``[n, d]`` (eager or exported models alike)."""
    out = model(torch.tensor(np.asarray(X), dtype=torch.float32))  # [members, n, k, 2]
    return out.permute(1, 0, 2, 3).numpy().astype(np.float64)


def summarize(members: np.ndarray, outcomes: list[Outcome], level: float = 0.9, seed: int = 0) -> dict[str, np.ndarray]:
    """Per outcome: ``mean`` and the ``level`` interval (``lo``, ``hi``) over members ``[n, members, k, 2]``.
    Binary outcomes: the interval of the probability across members. Numeric outcomes: the
    predictive interval of the members' Gaussian mixture (their spread plus their noise)."""
    value, var = members[..., 0], members[..., 1]
    mean = value.mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(value, alpha, axis=1), np.quantile(value, 1 - alpha, axis=1)
    numeric = np.array([o.kind == "numeric" for o in outcomes])
    if numeric.any():
        rng = np.random.default_rng(seed)
        draws = value[..., None] + np.sqrt(var)[..., None] * rng.standard_normal((*value.shape, 64))
        draws = draws.transpose(0, 2, 1, 3).reshape(value.shape[0], value.shape[2], -1)  # [n, k, members*64]
        lo = np.where(numeric, np.quantile(draws, alpha, axis=-1), lo)
        hi = np.where(numeric, np.quantile(draws, 1 - alpha, axis=-1), hi)
    return {"mean": mean, "lo": lo, "hi": hi}


def covered(summary: dict[str, np.ndarray], Y: np.ndarray, outcomes: list[Outcome], level: float = 0.9) -> np.ndarray:
    """Whether each observed outcome lies in its ``level`` prediction set: for a binary outcome the
    set of values whose predicted probability is at least ``1 - level`` (both when unsure, one when
    sure); for a numeric one the predictive interval. NaN where the outcome was not observed."""
    p = summary["mean"]
    binary = np.array([o.kind == "binary" for o in outcomes])
    in_set = np.where(Y == 1, p >= 1 - level, (1 - p) >= 1 - level)
    in_interval = (Y >= summary["lo"]) & (Y <= summary["hi"])
    return np.where(np.isnan(Y), np.nan, np.where(binary, in_set, in_interval).astype(float))
