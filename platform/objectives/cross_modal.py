"""Cross-modal alignment: the embeddings two inputs give the same sample are pulled together.

For a fusion encoder (several inputs, e.g. three accelerometers, or a waveform and its
spectrogram), each input's projected features go through a small projection head; within a batch,
the pair of one sample's embeddings is the positive and the other samples' are negatives
(symmetric InfoNCE with a learned temperature, as CLIP: Radford et al., "Learning Transferable
Visual Models From Natural Language Supervision", ICML 2021). With ``anchor`` every input is
aligned to that one input (ImageBind: Girdhar et al., CVPR 2023), else every pair of inputs. Pairs
use the samples that have both inputs.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..data.batch import Batch
from ..losses import info_nce
from ._base import Objective, register_objective


@register_objective("cross_modal", modalities=("multi",))
class CrossModalAlignment(Objective):
    def __init__(self, encoder, spec=None, task=None, anchor: str | None = None, temperature: float = 0.07,
                 dim: int = 128) -> None:
        super().__init__(encoder)
        names = list(encoder.inputs)
        if len(names) < 2:
            raise ValueError("cross_modal aligns inputs with each other: the encoder needs at least two")
        if anchor is not None and anchor not in names:
            raise ValueError(f"anchor {anchor!r} is not an input; the encoder takes {names}")
        width = encoder.project[names[0]][0].out_features
        self.heads = nn.ModuleDict({k: nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, dim))
                                    for k in names})
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        self.pairs = [(anchor, k) for k in names if k != anchor] if anchor else list(itertools.combinations(names, 2))

    def step(self, batch: Batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        encoder = self.encoder
        present = encoder.presence(batch.inputs)
        z = encoder.embed_inputs(batch.inputs, present)
        embedded = {k: F.normalize(self.heads[k](z[:, m]), dim=1) for m, k in enumerate(encoder.inputs)}
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        losses, correct, counted = [], 0, 0
        for a, b in self.pairs:
            both = present[:, encoder.inputs.index(a)] & present[:, encoder.inputs.index(b)]
            if int(both.sum()) < 2:
                continue
            za, zb = embedded[a][both], embedded[b][both]
            losses.append((info_nce(za, zb, temperature=1 / scale) + info_nce(zb, za, temperature=1 / scale)) / 2)
            with torch.no_grad():
                correct += int(((za @ zb.T).argmax(dim=1) == torch.arange(len(za), device=za.device)).sum())
            counted += len(za)
        if not losses:  # no sample with two inputs: nothing to align (the loss still touches the graph)
            return {"loss": self.logit_scale * 0.0, "pair_accuracy": torch.tensor(0.0), "temperature": 1 / scale.detach()}
        return {"loss": torch.stack(losses).mean(), "pair_accuracy": torch.tensor(correct / max(counted, 1)),
                "temperature": 1 / scale.detach()}
