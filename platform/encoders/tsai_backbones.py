"""tsai backbones as feature extractors (InceptionTime, ResNet, TST, LSTM-FCN, Sequencer).

Model modules are imported lazily, one at a time: never ``tsai.all``.
InceptionTime: Ismail Fawaz et al., DMKD 2020. TST: Zerveas et al., KDD 2021. LSTM-FCN: Karim et al.,
IEEE Access 2018. Sequencer: Tatsunami & Taki, NeurIPS 2022 (tsai's TSSequencerPlus).
"""

from __future__ import annotations

import importlib
import warnings

import torch

from ..data.inputs import SeriesInput
from ._base import Encoder, register_encoder


class TsaiBackbone(Encoder):
    """The ``backbone`` of a tsai model (its ``head`` is dropped); pooled by mean over time."""

    def __init__(self, module: str, cls: str, c_in: int, seq_len: int, **options) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model_cls = getattr(importlib.import_module(f"tsai.models.{module}"), cls)
            self.backbone = model_cls(c_in, 1, seq_len=seq_len, **options).backbone
        with torch.no_grad():
            was_training = self.backbone.training
            out = self.backbone.eval()(torch.zeros(2, c_in, seq_len))
            self.backbone.train(was_training)
        self.sequence_features = out.dim() == 3 and out.shape[-1] == seq_len
        self.out_dim = out.shape[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


@register_encoder("tsai/inception_time", aliases=("inception_time",))
def inception_time(spec: SeriesInput, nf: int = 32, **options) -> Encoder:
    return TsaiBackbone("InceptionTimePlus", "InceptionTimePlus", spec.channels, spec.window, nf=nf, **options)


@register_encoder("tsai/inception_small", aliases=("inception_small",))
def inception_small(spec: SeriesInput, nf: int = 16, depth: int = 3, ks: int = 20, **options) -> Encoder:
    return TsaiBackbone("InceptionTimePlus", "InceptionTimePlus", spec.channels, spec.window, nf=nf, depth=depth,
                        ks=ks, **options)


@register_encoder("tsai/resnet", aliases=("resnet",))
def resnet(spec: SeriesInput, nf: int = 32, **options) -> Encoder:
    return TsaiBackbone("ResNetPlus", "ResNetPlus", spec.channels, spec.window, nf=nf, **options)


@register_encoder("tsai/tst", aliases=("tst",))
def tst(spec: SeriesInput, d_model: int = 64, n_layers: int = 2, n_heads: int = 8, d_ff: int = 128,
        **options) -> Encoder:
    return TsaiBackbone("TSTPlus", "TSTPlus", spec.channels, spec.window, d_model=d_model, n_layers=n_layers,
                        n_heads=n_heads, d_ff=d_ff, flatten=False, key_padding_mask=False, **options)  # NOTE: "auto" writes into x


@register_encoder("tsai/lstm_fcn", aliases=("lstm_fcn",))
def lstm_fcn(spec: SeriesInput, hidden_size: int = 64, conv_layers: tuple = (64, 128, 64), **options) -> Encoder:
    return TsaiBackbone("RNN_FCNPlus", "LSTM_FCNPlus", spec.channels, spec.window, hidden_size=hidden_size,
                        conv_layers=list(conv_layers), rnn_dropout=0.2, **options)


@register_encoder("tsai/sequencer", aliases=("sequencer",))
def sequencer(spec: SeriesInput, d_model: int = 64, depth: int = 2, **options) -> Encoder:
    """Sensors projected to ``d_model`` features per step, then ``depth`` blocks that mix the steps of
    each feature with a bidirectional LSTM and the features of each step with an MLP; pooled by the mean
    over time. The best single C-MAPSS RUL model here (``benchmarks/results/within_domain.json``)."""
    encoder = TsaiBackbone("TSSequencerPlus", "TSSequencerPlus", spec.channels, spec.window, d_model=d_model,
                           depth=depth, **options)
    if not options.get("use_token", False):  # the class token is then never used: no gradient (DDP waits for one)
        encoder.backbone.cls_token.requires_grad_(False)
    return encoder
