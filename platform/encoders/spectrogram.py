"""Series windows seen as images: a vibration window's spectrogram fed to an image backbone.

Each channel's short-time Fourier transform (``torch.stft``, Hann window) becomes a log-magnitude
time-frequency image, resized to ``size`` x ``size`` and standardized per image, then given to a
timm image model, by default EfficientNet-Lite0 with its ImageNet weights (offline): cross-modal
transfer from natural images to machine signals. One channel is repeated to the three the
backbone was trained on; other channel counts are averaged into one first.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..data.inputs import ImageInput, SeriesInput
from ._base import Encoder, register_encoder
from .timm_backbones import TimmEncoder


class SpectrogramEncoder(Encoder):
    modality = "series"

    def __init__(self, spec: SeriesInput, backbone: str = "tf_efficientnet_lite0", pretrained: str | bool = "imagenet",
                 n_fft: int | None = None, hop: int | None = None, size: int = 64) -> None:
        super().__init__()
        # default: 128 samples, or the largest power of two within half the window
        n_fft = n_fft or max(8, min(128, 1 << ((spec.window // 2).bit_length() - 1)))
        if not 8 <= n_fft <= spec.window:
            raise ValueError(f"n_fft must be 8 to the window length ({spec.window}), not {n_fft}")
        self.n_fft, self.hop, self.size = n_fft, hop or n_fft // 4, size
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.image = TimmEncoder(backbone, ImageInput(size=(size, size), channels=3), pretrained=pretrained)
        self.out_dim = self.image.out_dim

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """Windows ``[B, C, L]`` → spectrogram images ``[B, 3, size, size]``."""
        if x.shape[1] != 1:
            x = x.mean(dim=1, keepdim=True)
        z = torch.stft(x[:, 0], self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        image = torch.log1p(z.abs())[:, None]  # [B, 1, frequencies, frames]
        image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        mean = image.mean(dim=(2, 3), keepdim=True)
        std = image.std(dim=(2, 3), keepdim=True)
        return ((image - mean) / (std + 1e-6)).expand(-1, 3, -1, -1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.image.forward_features(self.to_image(x))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.image.pool(features)


@register_encoder("spectrogram", modality="series")
def spectrogram(spec: SeriesInput, **options) -> SpectrogramEncoder:
    """Options: ``backbone`` (a timm model), ``pretrained`` (``imagenet``, the default; a weight file; or
    ``false`` for random weights: a null option keeps the default, as every encoder option does),
    ``n_fft`` (default 128, less for short windows), ``hop`` (default ``n_fft // 4``), ``size`` (image
    side in pixels)."""
    return SpectrogramEncoder(spec, **options)
