"""Fusion of several inputs: one encoder per input (from the encoder factory) and a fusion module.

Every input's features are projected to ``dim`` and layer-normalized, then fused:

- ``concat``: the projected features side by side (``out_dim = M * dim``); an absent input's
  place holds a learned "absent" vector of its own, never its zero tensor's features.
- ``gated``: a softmax-gated sum over the present inputs (late fusion with learned weights, Arevalo
  et al., "Gated Multimodal Units for Information Fusion", ICLR-W 2017); absent inputs get no weight.
- ``attention``: a transformer layer over one token per input plus a summary token that is read
  out; absent inputs are masked out of the attention (key padding mask).

Which inputs a sample has comes from the batch's presence mask (input ``present``, ``[B, M]``
bool); without one every input is present. The mask enters the model as data, so an exported
model keeps the missing-input path. Modality dropout (``modality_dropout``: the chance that a
present input is hidden while training, never the last one of a sample) teaches the model to
work with any subset.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..data.inputs import InputSpec
from ..data.multimodal import PRESENT
from ._base import Encoder, create_encoder, register_encoder

FUSIONS = ("concat", "gated", "attention")


class FusionEncoder(Encoder):
    """Encoders by input name, fused into one feature vector per sample."""

    modality = "multi"

    def __init__(self, encoders: dict[str, Encoder], fusion: str = "gated", dim: int = 128,
                 modality_dropout: float = 0.0, heads: int = 4) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        if not 0 <= modality_dropout < 1:
            raise ValueError(f"modality_dropout is a probability in [0, 1), not {modality_dropout!r}")
        self.inputs = list(encoders)
        self.fusion, self.modality_dropout = fusion, float(modality_dropout)
        self.encoders = nn.ModuleDict(encoders)
        # an encoder with batch norm cannot train on a single sample
        self._batch_norm = {k: _has_batch_norm(e) for k, e in encoders.items()}
        self.project = nn.ModuleDict({k: nn.Sequential(nn.Linear(e.out_dim, dim), nn.LayerNorm(dim))
                                      for k, e in encoders.items()})
        m = len(encoders)
        if fusion == "concat":
            self.absent = nn.Parameter(torch.zeros(m, dim))
            self.out_dim = m * dim
        elif fusion == "gated":
            self.gate = nn.Linear(dim, 1)
            self.out_dim = dim
        else:
            self.token = nn.Parameter(torch.zeros(1, 1, dim))
            self.position = nn.Parameter(torch.randn(1, m, dim) * 0.02)
            self.mixer = _MaskedBlock(dim, heads)
            self.out_dim = dim
        self.last_weights: torch.Tensor | None = None  # gated: each input's weight in the last batch

    def forward(self, x: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(x, Mapping):
            raise TypeError(f"a fusion encoder takes a dict of inputs ({', '.join(self.inputs)}), not a tensor")
        missing = [k for k in self.inputs if k not in x]
        if missing:
            raise KeyError(f"inputs {missing} are not in the batch (it has {sorted(x)}); mark absent inputs in "
                           f"'{PRESENT}' and give zeros")
        present = self.presence(x)
        if self.training and self.modality_dropout:
            present = self._drop(present)
        return self._fuse(self.embed_inputs(x, present), present)

    def presence(self, x: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The batch's presence mask ``[B, M]`` bool (every input present where it has none)."""
        present = x.get(PRESENT)
        if present is None:
            first = x[self.inputs[0]]
            present = torch.ones(first.shape[0], len(self.inputs), dtype=torch.bool, device=first.device)
        return present.to(torch.bool)

    def embed_inputs(self, x: Mapping[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Each input's projected features ``[B, M, dim]`` (before fusion; zeros where absent while
        training)."""
        return torch.stack([self._embed(k, x[k], present[:, m]) for m, k in enumerate(self.inputs)], dim=1)

    def _embed(self, name: str, x: torch.Tensor, have: torch.Tensor) -> torch.Tensor:
        """Input ``name``'s projected features ``[B, dim]``. While training, the encoder sees only
        the samples that have the input (its batch statistics stay those of real data)."""
        encoder, project = self.encoders[name], self.project[name]
        if not self.training:
            return project(encoder(x))
        rows = torch.nonzero(have).squeeze(1)
        dim = project[0].out_features
        out = x.new_zeros((len(x), dim), dtype=torch.float32)
        if len(rows) > 1 or (len(rows) == 1 and not self._batch_norm[name]):
            out = out.index_copy(0, rows, project(encoder(x.index_select(0, rows))).to(out.dtype))
        return out

    def _drop(self, present: torch.Tensor) -> torch.Tensor:
        """Hides each present input with probability ``modality_dropout``, keeping one per sample."""
        draw = torch.rand(present.shape, device=present.device)
        kept = present & (draw >= self.modality_dropout)
        lost = ~kept.any(dim=1) & present.any(dim=1)
        # a sample that would lose every input keeps one of its own, drawn at random
        one = torch.nn.functional.one_hot(torch.where(present, draw, -1.0).argmax(dim=1), present.shape[1]).bool()
        return torch.where(lost[:, None], one, kept)

    def _fuse(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if self.fusion == "concat":
            z = torch.where(present[:, :, None], z, self.absent[None].to(z.dtype))
            return z.flatten(1)
        if self.fusion == "gated":
            logits = self.gate(z).squeeze(-1).masked_fill(~present, -1e4)
            weights = torch.softmax(logits, dim=1) * present  # no input present: all weights zero
            if not (torch.compiler.is_exporting() or torch.jit.is_tracing()):  # an export keeps no side state
                self.last_weights = weights.detach()
            return (weights[:, :, None] * z).sum(dim=1)
        tokens = torch.cat([self.token.expand(z.shape[0], -1, -1).to(z.dtype), z + self.position.to(z.dtype)], dim=1)
        keep = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)
        return self.mixer(tokens, keep)[:, 0]


class _MaskedBlock(nn.Module):
    """A pre-norm transformer block whose attention skips masked tokens. Written on
    ``scaled_dot_product_attention`` rather than ``nn.TransformerEncoderLayer``, whose inference
    fast path exports to ONNX with the batch size fixed."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, L, D]``; ``keep`` ``[B, L]`` bool, the tokens attention may look at."""
        length, dim = x.shape[1], x.shape[2]
        q, k, v = self.qkv(self.norm1(x)).reshape(-1, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        mixed = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = x + self.out(mixed.transpose(1, 2).reshape(-1, length, dim))
        return x + self.mlp(self.norm2(x))


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@register_encoder("fusion", modality="multi")
def fusion(spec: InputSpec, encoders: str | dict = "cnn_small", fusion: str = "gated", dim: int = 128,
           modality_dropout: float = 0.2, heads: int = 4) -> FusionEncoder:
    """``encoders``: one encoder name for every input, or input name → encoder name or
    ``{name: ..., options: {...}}``."""
    if not isinstance(spec, InputSpec) or not spec.names:
        raise ValueError("the fusion encoder takes an input spec with named inputs (data.inputs)")
    chosen = encoders if isinstance(encoders, Mapping) else {k: encoders for k in spec.names}
    unknown = sorted(set(chosen) - set(spec.names))
    if unknown:
        raise ValueError(f"encoders for input(s) {unknown}, which the data does not have ({spec.names})")
    built = {}
    for name in spec.names:
        choice = chosen.get(name)
        if choice is None:
            raise ValueError(f"no encoder for input {name!r}; give one for each of {spec.names}")
        enc_name, options = (choice, {}) if isinstance(choice, str) else (choice["name"], choice.get("options") or {})
        built[name] = create_encoder(enc_name, spec[name], **options)
    return FusionEncoder(built, fusion=fusion, dim=dim, modality_dropout=modality_dropout, heads=heads)
