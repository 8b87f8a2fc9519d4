"""Fine-tuning strategies: which encoder parameters train, when, and at what learning rate.

L2-SP: Li, Grandvalet, Davoine, "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks", ICML 2018. Gradual unfreezing and discriminative rates: Howard & Ruder, ULMFiT, ACL 2018.
LP-FT: Kumar, Raghunathan, Jones, Ma, Liang, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", ICLR 2022.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


class Strategy:
    """Default: full fine-tuning, encoder learning rate ``lr * encoder_lr_mult``.

    ``probe``: a :class:`LinearProbe` whose ``fit_head`` fits the head before any epoch (None: the
    head starts as built); ``trains``: whether epochs of training follow (False: the probe is all).
    """

    probe: "LinearProbe | None" = None
    trains = True

    def __init__(self, encoder_lr_mult: float = 1.0) -> None:
        self.encoder_lr_mult = encoder_lr_mult

    def param_groups(self, encoder: nn.Module, rest: list[nn.Parameter], lr: float) -> list[dict]:
        return [{"params": list(encoder.parameters()), "lr": lr * self.encoder_lr_mult, "name": "encoder"},
                {"params": rest, "lr": lr, "name": "head"}]

    def on_epoch_start(self, epoch: int, encoder: nn.Module) -> None:
        """Called before each epoch (0-based); may freeze or unfreeze encoder parts."""

    def penalty(self, encoder: nn.Module) -> torch.Tensor | None:
        return None


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)
    # NOTE: frozen BatchNorm layers keep their running statistics (eval mode), as in a linear probe.
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(trainable and module.training)


class LinearProbe(Strategy):
    """The encoder never trains; only the head does, on the encoder's inference features (the
    encoder stays in eval mode: no dropout, BatchNorm on its running statistics).

    ``solver="sgd"``: the head trains in the run's epochs like any other. ``solver="lbfgs"``: a
    linear head (``task.options.hidden=0``) is fitted once, full batch, to the minimum of the
    task's loss plus ``||W||^2 / (2 c n)`` over the ``n`` training samples' features (multinomial
    logistic regression for classes, with scikit-learn's ``C`` as ``c``), so neither the schedule
    nor a validation score decides when it stops: the probe of few-shot transfer.
    """

    def __init__(self, solver: str = "sgd", c: float = 1.0, max_iter: int = 1000) -> None:
        super().__init__()
        if solver not in ("sgd", "lbfgs"):
            raise ValueError(f"strategy.options.solver: 'sgd' or 'lbfgs', not {solver!r}")
        if not c > 0:
            raise ValueError(f"strategy.options.c: a positive inverse regularization strength, not {c!r}")
        self.solver, self.c, self.max_iter = solver, float(c), int(max_iter)
        if solver == "lbfgs":
            self.probe, self.trains = self, False

    def on_epoch_start(self, epoch, encoder):
        _set_trainable(encoder, False)
        encoder.eval()

    def fit_head(self, head: nn.Module, task, features: torch.Tensor, targets: torch.Tensor) -> dict:
        """Fits ``head``'s linear layer to ``features`` → ``targets`` (see the class); returns the
        final objective and the L-BFGS iterations it took."""
        linear = linear_layer(head)
        n = len(features)
        opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=self.max_iter, history_size=20,
                                tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")

        def objective() -> torch.Tensor:
            opt.zero_grad()
            loss = task.loss(linear(features), targets) + (linear.weight ** 2).sum() / (2 * self.c * n)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(objective)
        state = opt.state[linear.weight]
        return {"probe_objective": float(objective().detach()), "probe_iterations": int(state.get("n_iter", 0))}


def linear_layer(head: nn.Module) -> nn.Linear:
    """The one linear layer of a linear head (``nn.Linear``, or one behind dropout)."""
    layers = [m for m in head.modules() if not isinstance(m, (nn.Sequential, nn.Dropout, nn.Identity))]
    if len(layers) != 1 or not isinstance(layers[0], nn.Linear):
        kinds = ", ".join(type(m).__name__ for m in layers)
        raise ValueError(f"strategy.options.solver=lbfgs fits a linear head, but the task's head has {kinds}; "
                         "set task.options.hidden=0")
    return layers[0]


class FreezeUnfreeze(Strategy):
    """Head only for ``freeze_epochs``; then the encoder at ``encoder_lr_mult`` of the rate, either
    at once or (``gradual``) one top-level block per epoch from the output side down."""

    def __init__(self, freeze_epochs: int = 3, encoder_lr_mult: float = 0.1, gradual: bool = False) -> None:
        super().__init__(encoder_lr_mult)
        self.freeze_epochs, self.gradual = freeze_epochs, gradual

    def on_epoch_start(self, epoch, encoder):
        if epoch < self.freeze_epochs:
            _set_trainable(encoder, False)
            return
        blocks = [m for m in encoder.children() if any(True for _ in m.parameters())]
        blocks = blocks[0].children() if len(blocks) == 1 and len(list(blocks[0].children())) > 1 else blocks
        blocks = list(blocks)
        n_open = len(blocks) if not self.gradual else min(len(blocks), epoch - self.freeze_epochs + 1)
        for i, block in enumerate(reversed(blocks)):
            _set_trainable(block, i < n_open)


class LinearProbeThenFineTune(Strategy):
    """LP-FT: the linear head is first fitted to convergence on the frozen encoder's features (as
    ``linear_probe`` with ``solver=lbfgs``), then everything trains, the encoder at
    ``encoder_lr_mult`` of the rate, so that fine-tuning starts from a head that already fits
    instead of a random one whose early gradients distort the pretrained features."""

    def __init__(self, c: float = 1.0, encoder_lr_mult: float = 1.0, max_iter: int = 1000) -> None:
        super().__init__(encoder_lr_mult)
        self.probe = LinearProbe("lbfgs", c, max_iter)


class L2SP(Strategy):
    """Full fine-tuning with ``alpha/2 * ||w - w0||^2`` pulling encoder weights to their start point."""

    def __init__(self, alpha: float = 0.01, encoder_lr_mult: float = 1.0) -> None:
        super().__init__(encoder_lr_mult)
        self.alpha = alpha
        self.start: list[torch.Tensor] | None = None

    def param_groups(self, encoder, rest, lr):
        self.start = [p.detach().clone() for p in encoder.parameters()]
        return super().param_groups(encoder, rest, lr)

    def penalty(self, encoder):
        return 0.5 * self.alpha * sum(((p - p0) ** 2).sum() for p, p0 in zip(encoder.parameters(), self.start))


STRATEGIES = Registry("strategy")
register_strategy = STRATEGIES.register
list_strategies = STRATEGIES.names
create_strategy = STRATEGIES.create

register_strategy("full")(Strategy)
register_strategy("linear_probe")(LinearProbe)
register_strategy("freeze_unfreeze")(FreezeUnfreeze)
register_strategy("l2sp")(L2SP)
register_strategy("lp_ft")(LinearProbeThenFineTune)
