"""Self-supervised objectives for image encoders, and the image side of the shared ones.

* ``rotation``: predict which of 0/90/180/270 degrees an image was turned by (Gidaris, Singh,
  Komodakis, "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018).
* ``masked`` on images: masked-patch reconstruction as in SimMIM (Xie et al., CVPR 2022): random
  patches are set to the mean (zero after normalization), a 1x1 convolution and a pixel shuffle
  turn the last feature map back into pixels, and the loss is the L1 error on masked pixels.
* ``colorization``: predict the colour channels from the gray image (Zhang, Isola, Efros, ECCV
  2016, with a regression loss). Grayscale data (NEU, magnetic tile) has no colour to predict: the
  objective refuses it by name.
* ``gan`` on images: the adversarial autoencoder of the series form (see ``adversarial.py``), its
  decoder the same pixel-shuffle head over the last feature map.
* ``contrastive`` on images uses :func:`augment_images` (torchvision v2 crops and flips, plus
  brightness/contrast and blur) in the one NT-Xent / InfoNCE objective.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..losses import Discriminator, dann_schedule, reverse_gradient
from ._base import Objective, register_objective


def pixel_decoder(encoder, channels: int) -> nn.Module:
    """Last feature map ``[B, D, H/s, W/s]`` → pixels ``[B, channels, H, W]`` (1x1 conv + pixel shuffle)."""
    stride = encoder.stride
    return nn.Sequential(nn.Conv2d(encoder.out_dim, channels * stride * stride, 1), nn.PixelShuffle(stride))


def patch_mask(batch: int, height: int, width: int, patch: int, ratio: float, device) -> torch.Tensor:
    """``[B, 1, H, W]`` bool: about ``ratio`` of the ``patch`` x ``patch`` cells masked per image."""
    cells = torch.rand(batch, 1, -(-height // patch), -(-width // patch), device=device) < ratio
    return cells.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[:, :, :height, :width]


class Rotation(Objective):
    modalities = ("image",)

    def __init__(self, encoder, hidden: int = 256) -> None:
        super().__init__(encoder)
        self.head = nn.Sequential(nn.Linear(encoder.out_dim, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"rotation pretraining needs square images, got {x.shape[-2]}x{x.shape[-1]}")
        k = torch.randint(0, 4, (len(x),), device=x.device)
        turned = torch.stack([torch.rot90(img, int(q), dims=(1, 2)) for img, q in zip(x, k)])
        logits = self.head(self.encoder(turned))
        loss = F.cross_entropy(logits, k)
        return {"loss": loss, "rotation_acc": (logits.argmax(-1) == k).float().mean().detach()}


class MaskedImageModeling(Objective):
    modalities = ("image",)

    def __init__(self, encoder, spec, ratio: float = 0.5, patch: int = 16) -> None:
        super().__init__(encoder)
        if not 0 < ratio < 1:
            raise ValueError(f"masked image modeling: ratio in (0, 1), got {ratio}")
        self.ratio, self.patch = ratio, patch
        self.decoder = pixel_decoder(encoder, spec.channels)

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        mask = patch_mask(len(x), x.shape[-2], x.shape[-1], self.patch, self.ratio, x.device)
        recon = self.decoder(self.encoder.forward_features(x.masked_fill(mask, 0.0)))
        recon = recon[..., :x.shape[-2], :x.shape[-1]]
        masked = mask.expand_as(x)
        loss = (recon - x).abs()[masked].mean() if masked.any() else recon.sum() * 0
        return {"loss": loss, "masked_fraction": mask.float().mean().detach()}


class Colorization(Objective):
    modalities = ("image",)

    def __init__(self, encoder, spec) -> None:
        super().__init__(encoder)
        if spec.channels != 3:
            raise ValueError("colorization needs colour input (channels: 3); this model takes grayscale images")
        self.decoder = pixel_decoder(encoder, 3)

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        if torch.allclose(x[:, 0], x[:, 1]) and torch.allclose(x[:, 1], x[:, 2]):
            raise ValueError("colorization: these images are grayscale (all channels equal), there is no colour to "
                             "predict; NEU and magnetic tile are grayscale, use rotation, masked or contrastive")
        gray = x.mean(1, keepdim=True).expand_as(x)
        recon = self.decoder(self.encoder.forward_features(gray))[..., :x.shape[-2], :x.shape[-1]]
        return {"loss": F.mse_loss(recon, x)}


class ImageAdversarialAutoencoder(Objective):
    """Reconstruction from the last feature map, and a code (from pooled features) pushed towards a
    Gaussian prior by a discriminator behind gradient reversal: the series ``gan`` form on images."""

    modalities = ("image",)

    def __init__(self, encoder, spec, code_dim: int = 16, weight: float = 0.5) -> None:
        super().__init__(encoder)
        self.weight = weight
        self.to_code = nn.Linear(encoder.out_dim, code_dim)
        self.decoder = pixel_decoder(encoder, spec.channels)
        self.discriminator = Discriminator(code_dim, hidden=64)

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        features = self.encoder.forward_features(x)
        recon = F.mse_loss(self.decoder(features)[..., :x.shape[-2], :x.shape[-1]], x)
        z = self.to_code(self.encoder.pool(features))
        logits_code = self.discriminator(reverse_gradient(z, dann_schedule(progress)))
        logits_prior = self.discriminator(torch.randn_like(z))
        adv = (F.binary_cross_entropy_with_logits(logits_prior, torch.ones_like(logits_prior))
               + F.binary_cross_entropy_with_logits(logits_code, torch.zeros_like(logits_code)))
        return {"loss": recon + self.weight * adv, "reconstruction": recon.detach(), "adversarial": adv.detach()}


def augment_images(x: torch.Tensor, crop_scale: float = 0.35, brightness: float = 0.3,
                   blur: float = 0.5) -> torch.Tensor:
    """One random view per image of ``x [B, C, H, W]`` (already normalized): a resized crop of at
    least ``crop_scale`` of the area, horizontal and vertical flips (surfaces have no up), brightness
    and contrast scaled by up to ``brightness``, and a Gaussian blur with probability ``blur``."""
    from torchvision.transforms import v2

    size = list(x.shape[-2:])
    geometry = v2.Compose([v2.RandomResizedCrop(size, scale=(crop_scale, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
    smooth = v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=blur)
    views = torch.stack([smooth(geometry(img)) for img in x])  # per image: its own random parameters
    gain = 1 + brightness * (2 * torch.rand(len(x), 1, 1, 1, device=x.device) - 1)
    shift = brightness * (2 * torch.rand(len(x), 1, 1, 1, device=x.device) - 1)
    return views * gain + shift


@register_objective("rotation", modalities=("image",))
def rotation(encoder, *, spec, task=None, **options) -> Objective:
    return Rotation(encoder, **options)


@register_objective("colorization", modalities=("image",))
def colorization(encoder, *, spec, task=None, **options) -> Objective:
    return Colorization(encoder, spec, **options)
