"""Running an exported model: ONNX through onnxruntime (numpy in, numpy out; no torch), or the
TorchScript fallback (torch alone). The serving path imports this module, never ``_export``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

ORT_THREADS_ENV = "TRANSFERLINE_ORT_THREADS"  # intra-op threads per loaded ONNX model (default 1)
ORT_DEVICE_ENV = "TRANSFERLINE_ORT_DEVICE"  # where served ONNX models run: cpu (default), cuda or cuda:N


def ort_threads(threads: int | None = None) -> int:
    """``threads`` if given, else $TRANSFERLINE_ORT_THREADS, else 1 (one per replica: replicas scale out)."""
    if threads is None:
        value = os.environ.get(ORT_THREADS_ENV, "1")
        if not value.isdigit() or int(value) < 1:
            from ..errors import TransferlineError

            raise TransferlineError(f"${ORT_THREADS_ENV}={value!r}: a whole number of threads, 1 or more")
        threads = int(value)
    return threads


def ort_providers(device: str | None = None) -> list:
    """onnxruntime's execution providers for ``device`` (else $TRANSFERLINE_ORT_DEVICE, else
    ``cpu``): ``cpu``, or ``cuda`` / ``cuda:N`` (GPU N, with the CPU for the operators CUDA lacks).
    Raises TransferlineError naming the setting where this onnxruntime cannot run on a GPU
    (``onnxruntime-gpu`` can) or the value is not a device."""
    import re

    import onnxruntime

    from ..errors import TransferlineError

    where = "device" if device is not None else f"${ORT_DEVICE_ENV}"
    device = device if device is not None else os.environ.get(ORT_DEVICE_ENV, "cpu")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not match:
        raise TransferlineError(f"{where}={device!r}: cpu, cuda or cuda:N (a GPU's index)")
    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise TransferlineError(f"{where}={device!r}: this onnxruntime ({onnxruntime.__version__}) runs on "
                                f"{', '.join(available)} only; install onnxruntime-gpu to serve on a GPU")
    return [("CUDAExecutionProvider", {"device_id": int(match.group(1) or 0)}), "CPUExecutionProvider"]


class OnnxModule:
    """An ONNX file run by onnxruntime, on the CPU unless ``device`` (or $TRANSFERLINE_ORT_DEVICE)
    names a GPU (:func:`ort_providers`). :meth:`run` maps arrays to arrays (the serving path);
    calling it with a torch tensor answers a tensor (registration's checks against eager). A model
    of several inputs (``multi``) takes a dict of arrays by input name."""

    def __init__(self, path: str | Path, threads: int | None = None, device: str | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = ort_threads(threads)
        options.inter_op_num_threads = 1
        # NOTE: onnxruntime's CPU arena keeps the largest batch's buffers for good: 125-165 MB more
        # for EfficientNet-Lite0 after one batch of 32 (128 px), at no gain in speed up to batch 8.
        options.enable_cpu_mem_arena = False
        self.session = onnxruntime.InferenceSession(str(path), options, providers=ort_providers(device))
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.input = self.inputs[0]
        self.multi = len(self.inputs) > 1

    def run(self, x: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, x if isinstance(x, dict) else {self.input: x})[0]

    def sample(self, batch: int) -> np.ndarray | None:
        """Zeros shaped as ``batch`` inputs (None where the file leaves more than the batch axis free,
        or takes several inputs)."""
        if self.multi:
            return None
        spec = self.session.get_inputs()[0]
        rest = spec.shape[1:]
        if not all(isinstance(d, int) for d in rest):
            return None
        dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64}.get(spec.type)
        return None if dtype is None else np.zeros((batch, *rest), dtype)

    def __call__(self, *x):
        import torch

        if len(x) > 1:  # several inputs, in the file's order
            return torch.from_numpy(self.run({n: t.detach().cpu().numpy() for n, t in zip(self.inputs, x)}))
        return torch.from_numpy(self.run(x[0].detach().cpu().numpy()))

    def eval(self) -> "OnnxModule":
        return self


class TorchScriptModule:
    """The TorchScript fallback, for models that do not export to ONNX: arrays in and out. A model
    of several inputs takes a dict of arrays, passed in the order ``inputs`` names."""

    def __init__(self, path: str | Path, inputs: list[str] | None = None) -> None:
        self.module = load_exported(path)
        self.inputs = inputs or []
        self.multi = len(self.inputs) > 1

    def run(self, x: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.no_grad():
            if isinstance(x, dict):
                return self.module(*[torch.from_numpy(x[n]) for n in self.inputs]).numpy()
            return self.module(torch.from_numpy(x)).numpy()


def load_exported(path: str | Path):
    """The exported TorchScript module; needs torch only."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        return torch.jit.load(str(path), map_location="cpu").eval()
