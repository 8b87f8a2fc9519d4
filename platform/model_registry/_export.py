"""A trained run → the module that serves it (encoder, head, and the task's output transform),
exported as ONNX (onnxruntime serves it without torch) and as TorchScript (loads with torch alone,
the fallback): no tsai, no fastai, no transferline."""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import torch
from torch import nn

from transferline.data.multimodal import PRESENT

from ._runtime import OnnxModule, load_exported


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


class MultiInputModel(nn.Module):
    """A model of several inputs as exporters trace it: positional inputs in ``names`` order, then
    the presence mask ``present`` (``[B, M]`` bool), which stays an input of the export, so the
    exported model keeps the path for absent inputs."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)
        self.train(model.training)  # an exporter restores this mode to every submodule when it is done

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.model({**dict(zip(self.names, xs[:-1])), PRESENT: xs[-1]})


def example_input(spec, batch: int, seed: int = 0) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """A model input of ``batch`` samples: a tensor for one modality's spec; for an
    :class:`~transferline.data.InputSpec` of several inputs a tuple (each input, then a presence
    mask where every sample lacks some inputs but one, in turn, and has the rest)."""
    from transferline.data import InputSpec

    if not isinstance(spec, InputSpec):
        return torch.from_numpy(spec.example(batch, seed=seed))
    xs = [torch.from_numpy(s.example(batch, seed=seed + i)) for i, s in enumerate(spec.modalities.values())]
    m = len(xs)
    present = torch.rand(batch, m, generator=torch.Generator().manual_seed(seed)) < 0.5
    present[torch.arange(batch), torch.arange(batch) % m] = True
    present[0] = True  # the first sample has every input
    return (*xs, present)


def _call(model, example):
    return model(*example) if isinstance(example, tuple) else model(example)


def export_torchscript(model: nn.Module, spec, path: Path) -> torch.Tensor | tuple:
    """Traces ``model`` on a fixed example of its input ``spec`` (the modality spec its encoder
    reads, or for a :class:`MultiInputModel` the whole input spec) and saves it; returns the example
    (for equality checks)."""
    example = example_input(spec, 2, seed=0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return example


def export_mismatch(model: torch.nn.Module, example, path: str | Path, atol: float = 1e-4) -> float | None:
    """How far the export at ``path`` answers ``example`` from the eager ``model`` (largest absolute
    difference), or None where they agree within ``atol`` (absolute and relative)."""
    with torch.no_grad():
        eager, exported = _call(model, example).float(), _call(load_exported(path), example).float()
    return None if torch.allclose(eager, exported, atol=atol, rtol=atol) else float((eager - exported).abs().max())


# -- ONNX: what inspection models are served with (onnxruntime, no torch model code) ----------------

def export_onnx(model: torch.nn.Module, example, path: str | Path, dynamo: bool = False) -> None:
    """Exports ``model`` as ONNX, traced at ``example`` with the batch size left free: by the
    TorchScript-based exporter, or with ``dynamo`` by torch.export's (slower; it covers operators the
    first refuses, e.g. adaptive pooling to a size that does not divide the input's). A
    :class:`MultiInputModel` takes a tuple and gets one named ONNX input per model input, then ``present``."""
    args = example if isinstance(example, tuple) else (example,)
    names = [*model.names, PRESENT] if isinstance(model, MultiInputModel) else ["input"]
    with torch.no_grad(), warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")  # the exporter's notes on traced shapes and its deprecations
        if dynamo:
            batch = torch.export.Dim("batch")
            program = torch.onnx.export(model, args, None, dynamo=True, input_names=names, output_names=["output"],
                                        dynamic_shapes=_dynamic_batch(model, args, batch), verbose=False)
            program.save(str(path))
        else:
            torch.onnx.export(model, args, str(path), dynamo=False, input_names=names, output_names=["output"],
                              dynamic_axes={**{n: {0: "batch"} for n in names}, "output": {0: "batch"}})


def _dynamic_batch(model: nn.Module, args: tuple, batch) -> tuple:
    """torch.export's dynamic shapes: the batch axis of every input (a :class:`MultiInputModel`'s
    inputs arrive as one variadic argument)."""
    if isinstance(model, MultiInputModel):
        return (tuple({0: batch} for _ in args),)
    return ({0: batch},)


def onnx_mismatch(model: torch.nn.Module, example: torch.Tensor, path: str | Path, atol: float,
                  rtol: float) -> float | None:
    """How far onnxruntime's answer to ``example`` lies from the eager ``model``'s (largest absolute
    difference), or None where they agree within ``atol`` + ``rtol`` * |eager|."""
    with torch.no_grad():
        eager, exported = _call(model, example).float(), _call(OnnxModule(path, device="cpu"), example).float()
    return None if torch.allclose(eager, exported, atol=atol, rtol=rtol) else float((eager - exported).abs().max())


@contextmanager
def _quiet():
    """Silences stdout and stderr down to the file descriptors: the exporters print progress and,
    on failure, the whole traced graph from C++."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
            os.dup2(null.fileno(), 1), os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def export_served_onnx(model: torch.nn.Module, spec, out: Path, atol: float = 1e-3, rtol: float = 1e-4) -> dict:
    """Exports ``model`` to ``out/model.onnx`` for torch-free serving and checks onnxruntime against
    the eager model at two batch sizes (the batch axis is free). The TorchScript-based exporter goes
    first, torch.export's (dynamo) where it fails. Returns what serves the model:
    ``{"served_by": "onnxruntime", "exporter": ..., "onnx_max_diff": ...}``, or, where neither exports
    a model that agrees (the file then removed), ``{"served_by": "torchscript", "onnx_error": why}``."""
    path = out / "model.onnx"
    examples = [example_input(spec, n, seed=n) for n in (1, 5)]
    errors = []
    for exporter in ("torchscript", "dynamo"):
        try:
            export_onnx(model, examples[1], path, dynamo=exporter == "dynamo")
            runtime = OnnxModule(path, device="cpu")  # registration checks on the CPU, whatever serves
            with torch.no_grad():
                pairs = [(_call(model, x).float(), _call(runtime, x).float()) for x in examples]
        except Exception as exc:  # the exporters' and onnxruntime's errors have no common base
            path.unlink(missing_ok=True)
            errors.append(f"{exporter} exporter: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:240]}")
            continue
        diff = max(float((eager - exported).abs().max()) for eager, exported in pairs)
        if all(torch.allclose(eager, exported, atol=atol, rtol=rtol) for eager, exported in pairs):
            return {"served_by": "onnxruntime", "exporter": exporter, "onnx_max_diff": diff}
        path.unlink(missing_ok=True)
        errors.append(f"{exporter} exporter: onnxruntime differs from eager by {diff:.2e}")
    return {"served_by": "torchscript", "onnx_error": "; ".join(errors)}
