"""GAN pretraining as an adversarial autoencoder (Makhzani et al., "Adversarial Autoencoders", 2016).

The form: the encoder maps a window to a code ``z``; a decoder reconstructs the window from ``z``;
a discriminator tells codes from samples of a Gaussian prior, and the encoder learns to fool it
through a gradient-reversal layer. Why this form rather than a DCGAN whose discriminator becomes
the encoder: (1) the module being trained is the encoder that transfer fine-tunes, not a by-product;
(2) reconstruction anchors the features to the input, which keeps training stable on a few thousand
windows, where a generator/discriminator game on raw signals often collapses; (3) gradient reversal
makes it one loss and one optimizer, so it runs in the same loop (in-process or Ray) as the other
objectives.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..data.inputs import SeriesInput
from ..losses import Discriminator, dann_schedule, reverse_gradient
from ._base import Objective, register_objective


class AdversarialAutoencoder(Objective):
    def __init__(self, encoder, spec: SeriesInput, code_dim: int = 16, weight: float = 0.5) -> None:
        super().__init__(encoder)
        self.weight = weight
        self.to_code = nn.Linear(encoder.out_dim, code_dim)
        shape = (spec.channels, spec.window)
        self.decoder = nn.Sequential(nn.Linear(code_dim, 128), nn.ReLU(), nn.Linear(128, shape[0] * shape[1]),
                                     nn.Unflatten(1, shape))
        self.discriminator = Discriminator(code_dim, hidden=64)

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        z = self.to_code(self.encoder(x))
        recon = F.mse_loss(self.decoder(z), x)
        prior = torch.randn_like(z)
        coeff = dann_schedule(progress)
        logits_code = self.discriminator(reverse_gradient(z, coeff))
        logits_prior = self.discriminator(prior)
        adv = (F.binary_cross_entropy_with_logits(logits_prior, torch.ones_like(logits_prior))
               + F.binary_cross_entropy_with_logits(logits_code, torch.zeros_like(logits_code)))
        return {"loss": recon + self.weight * adv, "reconstruction": recon.detach(), "adversarial": adv.detach()}


@register_objective("gan", modalities=("series", "image"))
def gan(encoder, *, spec, task=None, **options) -> Objective:
    if encoder.modality == "image":
        from .visual import ImageAdversarialAutoencoder

        return ImageAdversarialAutoencoder(encoder, spec, **options)
    return AdversarialAutoencoder(encoder, spec, **options)
