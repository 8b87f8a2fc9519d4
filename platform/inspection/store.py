"""A fitted anomaly model on disk (a run folder the model registry can register) and back.

Run folder: ``model.safetensors`` (backbone weights and the memory bank or Gaussians, as tensors),
``model.json`` (kind ``anomaly``, the config, the input spec, the threshold, the fit's costs),
``config.yaml`` and ``metrics.json``. Written in a sibling staging folder and renamed into place:
a crash leaves no half-written run.

What the registry exports is :class:`Served`: images ``[B, C, H, W]`` → ``[B, 1 + H*W]``, the image
score followed by the pixel map, so that the server's batching slices it like any other output.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .._fs import save_run
from ..data.inputs import InputSpec
from ..errors import TransferlineError
from .anomaly import AnomalyConfig, AnomalyModel, FitInfo, Padim, PatchCore, build_features

KIND = "anomaly"
ATOL = 1e-3  # scores are distances of a few tens: TorchScript and eager agree to float32 rounding
# NOTE: onnxruntime computes nearest-neighbour distances as |a|^2 + |b|^2 - 2ab in float32; near-zero
# distances then differ from torch's by a few hundredths after the square root.
ONNX_ATOL, ONNX_RTOL = 0.05, 1e-2


def save_anomaly(out: str | os.PathLike, model: AnomalyModel, config: AnomalyConfig, info: FitInfo, spec, *,
                 dataset: str, good: list[str], metrics: dict) -> Path:
    """Writes the run folder ``out`` (which must not exist yet) atomically; ``spec`` is the
    :class:`~transferline.data.ImageInput` the model was fitted on."""
    meta = {"kind": KIND, "dataset": dataset, "good": good, "config": asdict(config),
            "input": InputSpec.of(spec).to_dict(),
            "threshold": float(model.threshold), "map_range": [info.map_low, float(model.threshold)],
            "fit": {k: v for k, v in info.to_dict().items() if k != "val_scores"}}
    return save_run(out, model.state_dict(), meta, {"data": {"dataset": dataset, "good": good},
                                                    "anomaly": asdict(config)}, metrics)


def load_anomaly(folder: str | os.PathLike) -> tuple[AnomalyModel, dict]:
    """The eager model and its ``model.json`` from a run folder or a registry version folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / "model.json").read_text())
    if meta.get("kind") != KIND:
        raise TransferlineError(f"{folder} holds no anomaly model (model.json kind {meta.get('kind')!r})")
    state = load_file(str(folder / "model.safetensors"))
    config = AnomalyConfig(**{**meta["config"], "pretrained": None})  # the weights are in the state
    spec = image_spec(meta)
    features = build_features(config, spec)
    if config.method == "patchcore":
        model: AnomalyModel = PatchCore(features, state["bank"], spec.size, config.sigma)
    else:
        model = Padim(features, state["dims"], state["mean"], state["precision"], spec.size, config.sigma)
    model.load_state_dict(state)
    return model.eval(), meta


class Served(nn.Module):
    """The exported form: images → ``[B, 1 + H*W]`` (image score, then the pixel map row by row)."""

    def __init__(self, model: AnomalyModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score, pixels = self.model(x)
        return torch.cat([score[:, None], pixels.flatten(1)], dim=1)


def describe_anomaly(run_dir: Path, out: Path) -> dict:
    """The registry's side of an anomaly run: copies the weights, exports :class:`Served` as
    TorchScript and ONNX (what the server runs, with onnxruntime), checks both against the eager
    model, and returns the entry fields."""
    from ..model_registry._export import export_mismatch, export_onnx, export_torchscript, onnx_mismatch

    model, meta = load_anomaly(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for fname in ("model.safetensors", "model.json"):
        shutil.copyfile(run_dir / fname, out / fname)
    image = meta["input"]["image"]
    served = Served(model).eval()
    example = export_torchscript(served, image_spec(meta), out / "model.ts")
    mismatch = export_mismatch(served, example, out / "model.ts", ATOL)
    if mismatch is not None:
        raise TransferlineError(f"the exported anomaly model differs from the eager one by {mismatch:.2e}")
    export_onnx(served, example, out / "model.onnx")
    mismatch = onnx_mismatch(served, example, out / "model.onnx", ONNX_ATOL, ONNX_RTOL)
    if mismatch is not None:
        raise TransferlineError(f"the ONNX anomaly model differs from the eager one by {mismatch:.2e}")
    config = meta["config"]
    return {"task": {"name": "anomaly", "type": "anomaly", "options": {"method": config["method"]}},
            "modality": "image",
            "encoder": {"name": config["encoder"], "options": {"stages": config["stages"]}},
            "input": meta["input"],
            "output": {"kind": "anomaly", "threshold": meta["threshold"], "map_size": image["size"],
                       "map_range": meta["map_range"], "good": meta["good"]},
            "lineage": {"run_dir": str(run_dir.resolve()), "dataset": meta["dataset"], "good": meta["good"],
                        "pretrained": config.get("pretrained"), "seed": config["seed"]},
            "metrics": {**metrics, "fit": meta["fit"]}}


# -- detectors -----------------------------------------------------------------------------------

DETECTOR = "detector"


def save_detector(out: str | os.PathLike, model, config, spec, *, dataset: str, metrics: dict) -> Path:
    """Writes a detector's run folder ``out`` (which must not exist yet) atomically: weights, the
    config, class names and input spec in ``model.json``, the metrics with the training history."""
    meta = {"kind": DETECTOR, "dataset": dataset, "classes": list(model.classes), "config": config.to_dict(),
            "input": InputSpec.of(spec).to_dict()}
    return save_run(out, model.state_dict(), meta, {"data": {"dataset": dataset}, "detector": config.to_dict()},
                    metrics)


def image_spec(meta: dict):
    """The :class:`~transferline.data.ImageInput` a saved inspection model's ``model.json`` records."""
    return InputSpec.from_dict(meta["input"])["image"]


def detector_spec(folder: str | os.PathLike):
    """A detector run's input spec and its ``model.json``, without loading the model."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise TransferlineError(f"{folder}: no readable model.json ({type(exc).__name__})") from None
    if meta.get("kind") != DETECTOR:
        raise TransferlineError(f"{folder} holds no detector (model.json kind {meta.get('kind')!r})")
    return image_spec(meta), meta


def load_detector(folder: str | os.PathLike):
    """The eager detector, its input spec and its ``model.json`` from a run or registry version folder."""
    from safetensors.torch import load_file

    from .detection import DetectorConfig, build_detector

    folder = Path(folder)
    spec, meta = detector_spec(folder)
    config = DetectorConfig(**{**meta["config"], "pretrained": None})  # the weights are in the state
    model = build_detector(config, meta["classes"], spec)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval(), spec, meta


def describe_detector(run_dir: Path, out: Path) -> dict:
    """The registry's side of a detector run: copies weights and ``model.json``, exports the dense
    network (:class:`~transferline.inspection.detection.DenseDetector`) as ONNX (served by
    onnxruntime) and TorchScript; the server decodes their output with the same
    :class:`~transferline.inspection.detection.BoxDecoder`. Checks that both answer as the eager
    model does (dense outputs within tolerance, the same boxes after NMS), and returns the entry fields."""
    from ..model_registry._export import (OnnxModule, export_mismatch, export_onnx, export_torchscript, load_exported,
                                          onnx_mismatch)
    from .detection import DenseDetector

    model, spec, meta = load_detector(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for fname in ("model.safetensors", "model.json"):
        shutil.copyfile(run_dir / fname, out / fname)
    dense = DenseDetector(model).eval()
    example = export_torchscript(dense, spec, out / "model.ts")
    mismatch = export_mismatch(dense, example, out / "model.ts", ATOL)
    if mismatch is not None:
        raise TransferlineError(f"the exported detector differs from the eager one by {mismatch:.2e}")
    export_onnx(dense, example, out / "model.onnx")
    mismatch = onnx_mismatch(dense, example, out / "model.onnx", 1e-3, 1e-3)
    if mismatch is not None:
        raise TransferlineError(f"the ONNX detector differs from the eager one by {mismatch:.2e}")
    with torch.no_grad():
        eager = model(example)
        exported = [model.decoder(load_exported(out / "model.ts")(example)),
                    model.decoder(OnnxModule(out / "model.onnx")(example))]
    for served in exported:
        for a, b in zip(eager, served):
            if not (torch.equal(a["labels"], b["labels"]) and torch.allclose(a["boxes"], b["boxes"], atol=1e-2)):
                raise TransferlineError("the exported detector finds other boxes than the eager one")
    config = meta["config"]
    return {"task": {"name": "detection", "type": "detection", "options": {"head": "fcos"}},
            "modality": "image",
            "encoder": {"name": config["encoder"], "options": {"stages": config["stages"], "channels": config["channels"]}},
            "input": meta["input"],
            "output": {"kind": "boxes", "classes": meta["classes"], "strides": model.strides,
                       "decoder": model.decoder.to_dict()},
            "lineage": {"run_dir": str(run_dir.resolve()), "dataset": meta["dataset"],
                        "pretrained": config.get("pretrained"), "seed": config["seed"]},
            "metrics": {k: v for k, v in metrics.items() if k != "history"}}
