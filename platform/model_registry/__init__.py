"""The model registry: versioned models (``name@version``, stages) with lineage, safetensors weights
and exports that load without the training code (ONNX for onnxruntime, TorchScript as the fallback).

The export helpers load on first use: the serving path imports the store without torch.
"""

from importlib import import_module

from ._runtime import load_exported
from .store import STAGES, IntegrityError, ModelEntry, ModelRegistry, RegistryError, resolve_models_root

_EXPORT = ("InferenceModel", "build_inference_model", "export_torchscript")

__all__ = ["InferenceModel", "IntegrityError", "ModelEntry", "ModelRegistry", "RegistryError", "STAGES",
           "build_inference_model", "export_torchscript", "load_exported", "resolve_models_root"]


def __getattr__(name: str):
    if name in _EXPORT:
        return getattr(import_module("._export", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
