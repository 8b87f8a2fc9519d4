"""Masked language modelling (BERT's pretraining task, Devlin et al., NAACL 2019), the text sibling
of masked reconstruction: domain-adaptive pretraining on unlabelled maintenance logs (Gururangan
et al., "Don't Stop Pretraining", ACL 2020).

Which tokens are masked, and how (80 % the mask token, 10 % a random token, 10 % kept), is
transformers' own ``DataCollatorForLanguageModeling``. The prediction head (dense → GELU →
LayerNorm → vocabulary logits) shares its output matrix with the encoder's input embeddings, as
BERT's does; only the encoder is kept after pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.inputs import TextInput
from ._base import Objective


class MaskedLanguageModel(Objective):
    modalities = ("text",)

    def __init__(self, encoder, spec: TextInput, ratio: float = 0.15) -> None:
        super().__init__(encoder)
        from transformers import DataCollatorForLanguageModeling

        from ..data.hf import load_tokenizer

        if not 0 < ratio < 1:
            raise ValueError(f"objective option ratio: between 0 and 1, not {ratio}")
        embeddings = getattr(getattr(encoder, "model", None), "get_input_embeddings", lambda: None)()
        if embeddings is None:
            raise ValueError(f"masked language modelling needs a transformers encoder; "
                             f"{getattr(encoder, 'name', type(encoder).__name__)!r} has no input embeddings")
        self.collator = DataCollatorForLanguageModeling(load_tokenizer(spec.tokenizer), mlm_probability=ratio)
        hidden = encoder.out_dim
        self.transform = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(embeddings.num_embeddings))
        self.ratio = ratio

    def step(self, batch, progress: float = 0.0) -> dict[str, torch.Tensor]:
        ids = self.own_input(batch)
        masked, labels = self.collator.torch_mask_tokens(ids.cpu().clone())
        masked, labels = masked.to(ids.device), labels.to(ids.device)
        hidden, _ = self.encoder.tokens(masked)
        chosen = labels != -100
        if not chosen.any():
            return {"loss": hidden.sum() * 0, "masked_fraction": chosen.float().mean()}
        weight = self.encoder.model.get_input_embeddings().weight
        logits = self.transform(hidden[chosen]) @ weight.T + self.bias
        loss = F.cross_entropy(logits, labels[chosen])
        accuracy = (logits.argmax(-1) == labels[chosen]).float().mean().detach()
        return {"loss": loss, "masked_fraction": chosen.float().mean().detach(), "masked_accuracy": accuracy}
