"""What a transfer run is, takes, returns and came from: the content of a registry entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ..encoders import encoder_input
from .store import RegistryError
from ._export import (MultiInputModel, build_inference_model, export_mismatch, export_served_onnx,
                      export_torchscript)

ATOL = 1e-4


def describe_run(run_dir: Path, out: Path) -> dict:
    """Copies the run's weights into ``out``, exports TorchScript and ONNX there, checks both against
    the eager model, and returns the entry fields (task, modality, encoder, input, output, lineage,
    metrics, runtime: what serves it)."""
    from safetensors.torch import load_file

    if _kind(run_dir) == "retriever":  # an encoder and an index: no model.safetensors of its own
        from ..retrieval.store import describe_retriever

        return describe_retriever(run_dir, out)
    for fname in ("model.safetensors", "model.json", "config.yaml", "metrics.json"):
        if not (run_dir / fname).is_file():
            raise RegistryError(f"{run_dir} is not a finished transfer run: no {fname}")
    try:
        meta = json.loads((run_dir / "model.json").read_text())
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (ValueError, yaml.YAMLError) as exc:
        raise RegistryError(f"{run_dir}: damaged run files ({type(exc).__name__}: {str(exc)[:120]})") from None
    if meta.get("kind") == "process_surrogate":
        from ..process.store import describe_surrogate

        return describe_surrogate(run_dir, out)
    if meta.get("kind") == "detector":
        from ..inspection.store import describe_detector

        return describe_detector(run_dir, out)
    if meta.get("kind") == "tagger":
        from ..tagging.store import describe_tagger

        return describe_tagger(run_dir, out)
    if meta.get("kind") == "anomaly":
        from ..inspection.store import describe_anomaly

        return describe_anomaly(run_dir, out)
    if not metrics.get("epochs_run") and not metrics.get("resumed_at_epoch"):
        raise RegistryError(f"{run_dir} trained no step (epochs_run {metrics.get('epochs_run')}); its weights are "
                                "untrained and cannot be registered")
    shutil.copyfile(run_dir / "model.safetensors", out / "model.safetensors")
    shutil.copyfile(run_dir / "model.json", out / "model.json")
    spec = run_input_spec(meta, config)
    model = build_inference_model(meta, load_file(str(out / "model.safetensors")), spec)
    served_spec = encoder_input(model.encoder.modality, spec)
    # several inputs: exported positional, then the presence mask
    served = MultiInputModel(model, spec.names) if served_spec is spec else model
    example = export_torchscript(served, served_spec, out / "model.ts")
    mismatch = export_mismatch(served, example, out / "model.ts", ATOL)
    if mismatch is not None:
        raise RegistryError(f"the exported model differs from the eager one by {mismatch:.2e} (> {ATOL})")
    runtime = export_served_onnx(served, served_spec, out)

    data = config["data"]
    task = dict(meta["task"])
    task_name = task.pop("name")
    output = meta.get("output") or _legacy_output(task_name, task, data)
    role = lambda r: {"dataset": data[r].get("dataset") or data["dataset"], "domains": data[r].get("domains"),  # noqa: E731
                      "split": data[r].get("split")}
    return {
        "task": {"name": task_name, "type": "classification" if output["kind"] in ("class", "labels") else "regression",
                 "options": task},
        "modality": "+".join(spec.names),
        "encoder": {"name": meta["encoder"], "options": meta.get("options") or {}},
        "input": spec.to_dict(),
        "output": output,
        "lineage": {"run_dir": str(run_dir.resolve()), "source": role("source"), "target": role("target"),
                    "test": role("test"), "pretrained": config.get("pretrained"),
                    "adaptation": meta.get("adaptation"), "strategy": config.get("strategy"), "seed": config.get("seed")},
        "metrics": metrics,
        "runtime": runtime,
    }


def _kind(run_dir: Path) -> str | None:
    """The ``kind`` a run's model.json names (None: no readable model.json, or no kind)."""
    try:
        meta = json.loads((run_dir / "model.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("kind") if isinstance(meta, dict) else None


def run_input_spec(meta: dict, config: dict):
    """The input spec a run saved with its weights; runs written before input specs existed stored
    ``c_in`` and ``seq_len`` and took their normalization from the config's window spec."""
    from ..data import InputSpec, get_window_spec, series_input

    if "input" in meta:
        return InputSpec.from_dict(meta["input"])
    data = config["data"]
    window_spec = get_window_spec(data["spec"], **(data.get("spec_options") or {}))
    normalizers = meta.get("normalizers") or {}
    return InputSpec.of(series_input(window_spec, meta["c_in"], meta["seq_len"],
                                     normalizers.get("target") or normalizers.get("source")))


def _legacy_output(task_name: str, task: dict, data: dict) -> dict:
    """The output of a run written before tasks described their output (built-in tasks only)."""
    from ..data import get_window_spec

    if task_name == "rul":
        return {"kind": "regression", "names": ["rul"], "units": ["cycles"]}
    if task_name == "failure_within":
        return {"kind": "class", "classes": ["no", "yes"]}
    classes = get_window_spec(data["spec"], **(data.get("spec_options") or {})).classes
    return {"kind": "class", "classes": list(classes) if len(classes) == task.get("n_classes") else []}
