"""Source-only, MMD, CORAL, DANN, JMMD, CDAN and AdaBN, for classification and regression heads alike.

DANN: Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016.
Deep CORAL: Sun & Saenko, ECCV-W 2016. MK-MMD: Long et al. (DAN), ICML 2015.
JMMD: Long et al., "Deep Transfer Learning with Joint Adaptation Networks" (JAN), ICML 2017.
CDAN(+E): Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018.
AdaBN: Li et al., "Adaptive Batch Normalization for practical domain adaptation", Pattern Recognition 2018.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..losses import (Discriminator, RandomizedMultilinear, certainty_weights, coral, joint_mmd, mk_mmd,
                      multilinear_map, reverse_gradient)
from ._base import Adaptation, DomainBatch, register_adaptation


@register_adaptation("source_only")
class SourceOnly(Adaptation):
    supports_unlabeled_target = False


@register_adaptation("mmd")
class MMDAlignment(Adaptation):
    def alignment(self, f_s, f_t, progress):
        return {"align": mk_mmd(f_s, f_t)}


@register_adaptation("coral")
class CORALAlignment(Adaptation):
    def alignment(self, f_s, f_t, progress):
        return {"align": coral(f_s, f_t)}


@register_adaptation("dann")
class DANN(Adaptation):
    """A discriminator learns source vs target from features behind a gradient-reversal layer.

    The reversal coefficient follows the DANN ramp; the discriminator's own loss is always at full
    weight, so it keeps learning while the encoder is pushed to confuse it. Subclasses change what
    the discriminator sees and how each sample weighs (:meth:`domain_inputs`).
    """

    def __init__(self, encoder, head, task, hidden: int = 64, inputs: int | None = None, **options) -> None:
        super().__init__(encoder, head, task, **options)
        self.discriminator = Discriminator(inputs or encoder.out_dim, hidden=hidden)

    def domain_inputs(self, f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The discriminator's input for source then target samples, and per-sample weights (None: equal)."""
        return torch.cat([f_s, f_t]), None

    def alignment_loss(self, f_s, f_t, progress):
        inputs, weights = self.domain_inputs(f_s, f_t)
        domain = torch.cat([torch.zeros(len(f_s)), torch.ones(len(f_t))]).to(f_s.device)
        logits = self.discriminator(reverse_gradient(inputs, self.coefficient(progress)))
        adv = F.binary_cross_entropy_with_logits(logits, domain, weight=weights)
        return adv, {"domain": adv, "domain_acc": ((logits > 0).float() == domain).float().mean()}


def head_view(task, output: torch.Tensor) -> torch.Tensor:
    """What the conditional methods read from the head: class probabilities for a classifier, the
    output itself for a regressor."""
    return torch.softmax(output.float(), -1) if task.task_type == "classification" else output.float()


@register_adaptation("jmmd")
class JMMD(Adaptation):
    """MMD over the joint distribution of features and head outputs (JAN): the features' kernel
    (heuristic bandwidths) times the outputs' kernel (bandwidth ``output_bandwidth``, as JAN's
    0.92 for softmax outputs; the heuristic where None)."""

    def __init__(self, encoder, head, task, output_bandwidth: float | None = 0.92, **options) -> None:
        super().__init__(encoder, head, task, **options)
        self.output_bandwidth = output_bandwidth

    def alignment(self, f_s, f_t, progress):
        g_s, g_t = head_view(self.task, self.head(f_s)), head_view(self.task, self.head(f_t))
        bw = None if self.output_bandwidth is None else [self.output_bandwidth]
        return {"align": joint_mmd([f_s, g_s], [f_t, g_t], [None, bw])}


@register_adaptation("cdan")
class CDAN(DANN):
    """DANN whose discriminator sees the multilinear map of features and head outputs (predictions
    detached, as in TLlib). ``certainty`` (CDAN+E, classification) weighs each sample by
    ``1 + exp(-entropy)`` within its domain. A regressor conditions on ``[1, y]`` (its prediction
    with a constant), i.e. on the features and the features scaled by the predicted value(s). Above
    ``max_joint`` map dimensions the randomized map of ``random_dim`` is used."""

    def __init__(self, encoder, head, task, certainty: bool = True, max_joint: int = 4096, random_dim: int = 1024,
                 **options) -> None:
        outputs = [m for m in head.modules() if isinstance(m, nn.Linear)][-1].out_features
        n_out = outputs if task.task_type == "classification" else outputs + 1
        wide = encoder.out_dim * n_out > max_joint
        super().__init__(encoder, head, task, inputs=random_dim if wide else encoder.out_dim * n_out, **options)
        self.certainty = certainty and task.task_type == "classification"
        self.randomized = RandomizedMultilinear(encoder.out_dim, n_out, random_dim) if wide else None

    def predictions(self, f: torch.Tensor) -> torch.Tensor:
        g = head_view(self.task, self.head(f)).detach()
        return g if self.task.task_type == "classification" else torch.cat([torch.ones_like(g[:, :1]), g.flatten(1)], 1)

    def condition(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The multilinear map of features ``f`` and their (detached) predictions ``g``."""
        return self.randomized(f, g) if self.randomized is not None else multilinear_map(f, g)

    def domain_inputs(self, f_s, f_t):
        g_s, g_t = self.predictions(f_s), self.predictions(f_t)
        weights = torch.cat([certainty_weights(g_s), certainty_weights(g_t)]) if self.certainty else None
        return torch.cat([self.condition(f_s, g_s), self.condition(f_t, g_t)]), weights


@register_adaptation("adabn")
class AdaBN(Adaptation):
    """Trains on source (and labelled target) as source-only does, in batches of their own; the
    BatchNorm running statistics, used at evaluation and in the saved model, are estimated from
    target batches alone, so a model trained on source normalizes target features with target
    statistics. Source validation then also runs on target statistics."""

    def __init__(self, encoder, head, task, **options) -> None:
        super().__init__(encoder, head, task, **options)
        self.norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not self.norms:
            raise ValueError(f"adaptation adabn re-estimates BatchNorm statistics; encoder {encoder.name!r} has "
                             "no BatchNorm layer")

    def step(self, batch: DomainBatch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        if batch.target is not None and self.training:
            with torch.no_grad():  # batch statistics of the target alone update the running ones
                self.encoder(batch.target.inputs)
        for m in self.norms:  # the source forward normalizes with its batch statistics and keeps none
            m.track_running_stats = False
        try:
            return super().step(DomainBatch(batch.source, None, batch.target_labelled), progress)
        finally:
            for m in self.norms:
                m.track_running_stats = True
