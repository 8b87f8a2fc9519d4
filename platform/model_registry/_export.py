"""A trained run → the module that serves it (encoder, head, and the task's output transform),
exported as TorchScript so that loading it needs torch alone: no tsai, no fastai, no transferline."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class InferenceModel(nn.Module):
    """Preprocessed input (series ``[B, C, T]``, images ``[B, C, H, W]``) → predictions in label
    units (RUL cycles) or, for classifiers, class probabilities."""

    def __init__(self, encoder: nn.Module, head: nn.Module, task) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self._predict = task.served

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._predict(self.head(self.encoder(x)))


def build_inference_model(meta: dict, state: dict[str, torch.Tensor], spec) -> InferenceModel:
    """Rebuilds encoder and head from a transfer run's ``model.json`` for inputs ``spec`` (an
    :class:`~transferline.data.InputSpec`) and loads ``model.safetensors``."""
    from transferline.encoders import create_encoder
    from transferline.tasks import create_task

    task_cfg = dict(meta["task"])
    task = create_task(task_cfg.pop("name"), **task_cfg)
    encoder = create_encoder(meta["encoder"], spec, **(meta.get("options") or {}))
    head = task.build_head(encoder.out_dim)
    model = InferenceModel(encoder, head, task)
    own = {k: v for k, v in state.items() if k.split(".")[0] in ("encoder", "head")}
    missing, unexpected = model.load_state_dict(own, strict=False)
    if missing:
        raise ValueError(f"the run's weights lack {len(missing)} tensors of {meta['encoder']}: {missing[:3]}")
    return model.eval()


def export_torchscript(model: InferenceModel, spec, path: Path) -> torch.Tensor:
    """Traces ``model`` on a fixed example of its input ``spec`` (the modality spec its encoder
    reads) and saves it; returns the example (for equality checks)."""
    example = torch.from_numpy(spec.example(2, seed=0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return example


def load_exported(path: str | Path) -> torch.jit.ScriptModule:
    """The exported module; needs torch only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        return torch.jit.load(str(path), map_location="cpu").eval()


def export_mismatch(model: torch.nn.Module, example: torch.Tensor, path: str | Path, atol: float = 1e-4) -> float | None:
    """How far the export at ``path`` answers ``example`` from the eager ``model`` (largest absolute
    difference), or None where they agree within ``atol`` (absolute and relative)."""
    with torch.no_grad():
        eager, exported = model(example).float(), load_exported(path)(example).float()
    return None if torch.allclose(eager, exported, atol=atol, rtol=atol) else float((eager - exported).abs().max())


# -- ONNX: what inspection models are served with (onnxruntime, no torch model code) ----------------

def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | Path) -> None:
    """Exports ``model`` as ONNX, traced at ``example`` with the batch size left free."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on traced shapes and its deprecations
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


class OnnxModule:
    """An ONNX file run by onnxruntime on the CPU, called like an exported TorchScript module: a
    tensor in, a tensor out."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input: x.detach().cpu().numpy()})[0])

    def eval(self) -> "OnnxModule":
        return self


def onnx_mismatch(model: torch.nn.Module, example: torch.Tensor, path: str | Path, atol: float,
                  rtol: float) -> float | None:
    """How far onnxruntime's answer to ``example`` lies from the eager ``model``'s (largest absolute
    difference), or None where they agree within ``atol`` + ``rtol`` * |eager|."""
    with torch.no_grad():
        eager, exported = model(example).float(), OnnxModule(path)(example).float()
    return None if torch.allclose(eager, exported, atol=atol, rtol=rtol) else float((eager - exported).abs().max())
