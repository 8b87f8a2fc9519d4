"""Source-only, MMD, CORAL and DANN, for classification and regression heads alike.

DANN: Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016.
Deep CORAL: Sun & Saenko, ECCV-W 2016. MK-MMD: Long et al. (DAN), ICML 2015.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..losses import Discriminator, coral, mk_mmd, reverse_gradient
from ._base import Adaptation, register_adaptation


class SourceOnly(Adaptation):
    supports_unlabeled_target = False


class MMDAlignment(Adaptation):
    def alignment(self, f_s, f_t, progress):
        return {"align": mk_mmd(f_s, f_t)}


class CORALAlignment(Adaptation):
    def alignment(self, f_s, f_t, progress):
        return {"align": coral(f_s, f_t)}


class DANN(Adaptation):
    """A discriminator learns source vs target from features behind a gradient-reversal layer.

    The reversal coefficient follows the DANN ramp; the discriminator's own loss is always at full
    weight, so it keeps learning while the encoder is pushed to confuse it.
    """

    def __init__(self, encoder, head, task, weight: float = 1.0, ramp: bool = True, entropy: float = 0.0,
                 hidden: int = 64) -> None:
        super().__init__(encoder, head, task, weight=weight, ramp=ramp, entropy=entropy)
        self.discriminator = Discriminator(encoder.out_dim, hidden=hidden)

    def alignment_loss(self, f_s, f_t, progress):
        feats = reverse_gradient(torch.cat([f_s, f_t]), self.coefficient(progress))
        domain = torch.cat([torch.zeros(len(f_s)), torch.ones(len(f_t))]).to(f_s.device)
        logits = self.discriminator(feats)
        adv = F.binary_cross_entropy_with_logits(logits, domain)
        return adv, {"domain": adv, "domain_acc": ((logits > 0).float() == domain).float().mean()}


@register_adaptation("source_only")
def source_only(encoder, head, task, **options):
    return SourceOnly(encoder, head, task, **options)


@register_adaptation("mmd")
def mmd(encoder, head, task, **options):
    return MMDAlignment(encoder, head, task, **options)


@register_adaptation("coral")
def coral_method(encoder, head, task, **options):
    return CORALAlignment(encoder, head, task, **options)


@register_adaptation("dann")
def dann(encoder, head, task, **options):
    return DANN(encoder, head, task, **options)
