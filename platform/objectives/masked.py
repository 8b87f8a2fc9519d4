"""Masked reconstruction (as in tsai's MVP and Zerveas et al., "A Transformer-based Framework for
Multivariate Time Series Representation Learning", KDD 2021).

Masked values are zeroed in the input and the loss is the MSE on masked positions only.
``random`` masks each value independently; ``subsequence`` masks spans per channel whose lengths
are geometric with mean ``span`` (Zerveas et al.'s scheme, which keeps the task from being solved
by interpolating neighbours).
"""

from __future__ import annotations

import torch

from ..data.inputs import SeriesInput
from ._base import Objective, decode, reconstruction_decoder, register_objective


def random_mask(shape: torch.Size, ratio: float, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device) < ratio


def subsequence_mask(shape: torch.Size, ratio: float, span: float = 3.0,
                     generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Alternating masked / kept runs per channel: mean masked run ``span``, mean kept run
    ``span * (1 - ratio) / ratio``, so about ``ratio`` of each channel is masked."""
    batch, channels, length = shape
    p_end_masked = 1.0 / span
    p_end_kept = p_end_masked * ratio / (1 - ratio)
    state = torch.rand(batch, channels, generator=generator) < ratio
    out = torch.empty(batch, channels, length, dtype=torch.bool)
    draws = torch.rand(batch, channels, length, generator=generator)
    for t in range(length):
        out[:, :, t] = state
        flip = torch.where(state, draws[:, :, t] < p_end_masked, draws[:, :, t] < p_end_kept)
        state = state ^ flip
    return out.to(device) if device is not None else out


class MaskedReconstruction(Objective):
    def __init__(self, encoder, spec: SeriesInput, mask: str = "subsequence", ratio: float = 0.15,
                 span: float = 3.0) -> None:
        super().__init__(encoder)
        if mask not in ("random", "subsequence"):
            raise ValueError(f"mask must be 'random' or 'subsequence', not {mask!r}")
        self.mask, self.ratio, self.span = mask, ratio, span
        self.decoder = reconstruction_decoder(encoder, spec)

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        if self.mask == "random":
            mask = random_mask(x.shape, self.ratio, device=x.device)
        else:
            mask = subsequence_mask(x.shape, self.ratio, self.span, device=x.device)
        recon = decode(self.encoder, self.decoder, x.masked_fill(mask, 0.0))
        loss = ((recon - x) ** 2)[mask].mean() if mask.any() else recon.sum() * 0
        return {"loss": loss, "masked_fraction": mask.float().mean().detach()}


@register_objective("masked", modalities=("series", "image", "text"))
def masked(encoder, *, spec, task=None, **options) -> Objective:
    if encoder.modality == "text":
        from .language import MaskedLanguageModel

        return MaskedLanguageModel(encoder, spec, **options)
    if encoder.modality == "image":
        from .visual import MaskedImageModeling

        return MaskedImageModeling(encoder, spec, **options)
    return MaskedReconstruction(encoder, spec, **options)
