"""Contrastive pretraining: one objective, augmentations per modality.

Two augmented views of each sample are positives; the loss is NT-Xent (SimCLR) or InfoNCE
(query = view 1, key = view 2, in-batch negatives). Series augmentations (jitter, scaling, time
masking) follow Eldele et al., "Time-Series Representation Learning via Temporal and Contextual
Contrasting" (TS-TCC), IJCAI 2021; image augmentations (crops, flips, brightness, blur) SimCLR
(Chen et al., ICML 2020), see :func:`transferline.objectives.visual.augment_images`; text
augmentations (abbreviation swaps, token dropout) :class:`transferline.objectives.text_views.TextViews`.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..losses import info_nce, nt_xent
from ._base import Objective, register_objective
from .visual import augment_images


def augment(x: torch.Tensor, jitter: float = 0.1, scale: float = 0.1, mask_ratio: float = 0.1) -> torch.Tensor:
    """Gaussian jitter, per-channel scaling, and one zeroed time span per window."""
    out = x * (1 + scale * torch.randn(x.shape[0], x.shape[1], 1, device=x.device))
    out = out + jitter * torch.randn_like(x)
    length = x.shape[-1]
    span = max(1, int(mask_ratio * length))
    start = torch.randint(0, length - span + 1, (x.shape[0], 1), device=x.device)
    t = torch.arange(length, device=x.device).unsqueeze(0)
    keep = ~((t >= start) & (t < start + span))
    return out * keep.unsqueeze(1)


AUGMENTATIONS = {"series": augment, "image": augment_images}  # modality → one random view; the loss is shared


class Contrastive(Objective):
    """Two augmented views per sample, the augmentation chosen by the encoder's modality
    (:data:`AUGMENTATIONS`); ``augment_options`` go to it (series: ``jitter``, ``scale``,
    ``mask_ratio``; images: ``crop_scale``, ``brightness``, ``blur``; text: ``drop``, ``swap``,
    ``lexicon``, which need the input ``spec``'s tokenizer)."""

    def __init__(self, encoder, loss: str = "nt_xent", temperature: float = 0.2, proj_dim: int = 32, spec=None,
                 **augment_options) -> None:
        super().__init__(encoder)
        if loss not in ("nt_xent", "info_nce"):
            raise ValueError(f"loss must be 'nt_xent' or 'info_nce', not {loss!r}")
        if encoder.modality not in (*AUGMENTATIONS, "text"):
            raise ValueError(f"contrastive pretraining has augmentations for {', '.join(AUGMENTATIONS)} and text "
                             f"inputs, not {encoder.modality}")
        self.loss_name, self.temperature = loss, temperature
        if encoder.modality == "text":
            from .text_views import TextViews

            known = set(inspect.signature(TextViews).parameters) - {"spec"}
            self.augment = TextViews(spec, **_known(augment_options, known, "text"))
            self.aug = {}
        else:
            self.augment = AUGMENTATIONS[encoder.modality]
            self.aug = _known(augment_options, set(inspect.signature(self.augment).parameters) - {"x"},
                              encoder.modality)
        self.projection = nn.Sequential(nn.Linear(encoder.out_dim, encoder.out_dim), nn.ReLU(),
                                        nn.Linear(encoder.out_dim, proj_dim))

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = self.own_input(batch)
        z1 = self.projection(self.encoder(self.augment(x, **self.aug)))
        z2 = self.projection(self.encoder(self.augment(x, **self.aug)))
        fn = nt_xent if self.loss_name == "nt_xent" else info_nce
        return {"loss": fn(z1, z2, temperature=self.temperature)}


def _known(options: dict, known: set[str], modality: str) -> dict:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"contrastive on {modality}: unknown option(s) {unknown}; known: {sorted(known)}")
    return options


@register_objective("contrastive")
def contrastive(encoder, *, spec=None, task=None, **options) -> Objective:
    return Contrastive(encoder, spec=spec, **options)
