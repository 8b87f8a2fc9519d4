"""Fine-tuning strategies: which encoder parameters train, when, and at what learning rate.

L2-SP: Li, Grandvalet, Davoine, "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks", ICML 2018. Gradual unfreezing and discriminative rates: Howard & Ruder, ULMFiT, ACL 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


class Strategy:
    """Default: full fine-tuning, encoder learning rate ``lr * encoder_lr_mult``."""

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
    encoder stays in eval mode: no dropout, BatchNorm on its running statistics)."""

    def on_epoch_start(self, epoch, encoder):
        _set_trainable(encoder, False)
        encoder.eval()


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
