"""The model registry: versioned models (``name@version``, stages) with lineage, safetensors weights
and a TorchScript export that loads with torch alone."""

from ._export import InferenceModel, build_inference_model, export_torchscript, load_exported
from .store import STAGES, IntegrityError, ModelEntry, ModelRegistry, RegistryError, resolve_models_root

__all__ = ["InferenceModel", "IntegrityError", "ModelEntry", "ModelRegistry", "RegistryError", "STAGES", "build_inference_model",
           "export_torchscript", "load_exported", "resolve_models_root"]
