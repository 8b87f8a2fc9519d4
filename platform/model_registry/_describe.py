"""What a transfer run is, takes, returns and came from: the content of a registry entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml

from .store import RegistryError
from ._export import build_inference_model, export_torchscript, load_exported

ATOL = 1e-4


def describe_run(run_dir: Path, out: Path) -> dict:
    """Copies the run's weights into ``out``, exports TorchScript there, checks it against the eager
    model, and returns the entry fields (task, modality, encoder, input, output, lineage, metrics)."""
    from safetensors.torch import load_file

    from ..data import get_window_spec

    for fname in ("model.safetensors", "model.json", "config.yaml", "metrics.json"):
        if not (run_dir / fname).is_file():
            raise RegistryError(f"{run_dir} is not a finished transfer run: no {fname}")
    try:
        meta = json.loads((run_dir / "model.json").read_text())
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (ValueError, yaml.YAMLError) as exc:
        raise RegistryError(f"{run_dir}: damaged run files ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not metrics.get("epochs_run") and not metrics.get("resumed_at_epoch"):
        raise RegistryError(f"{run_dir} trained no step (epochs_run {metrics.get('epochs_run')}); its weights are "
                                "untrained and cannot be registered")
    shutil.copyfile(run_dir / "model.safetensors", out / "model.safetensors")
    shutil.copyfile(run_dir / "model.json", out / "model.json")
    model = build_inference_model(meta, load_file(str(out / "model.safetensors")))
    example = export_torchscript(model, meta["c_in"], meta["seq_len"], out / "model.ts")
    with torch.no_grad():
        eager, exported = model(example), load_exported(out / "model.ts")(example)
    if not torch.allclose(eager.float(), exported.float(), atol=ATOL, rtol=ATOL):
        raise RegistryError(f"the exported model differs from the eager one by "
                                f"{(eager.float() - exported.float()).abs().max():.2e} (> {ATOL})")

    data = config["data"]
    spec = get_window_spec(data["spec"], **(data.get("spec_options") or {}))
    normalizers = meta.get("normalizers") or {}
    normalizer = normalizers.get("target") or normalizers.get("source")
    task = dict(meta["task"])
    task_name = task.pop("name")
    classification = task_name != "rul"
    output = ({"kind": "class", "classes": list(spec.classes) if task_name == "fault_diagnosis" and spec.classes
               else ["no", "yes"] if task_name == "failure_within" else []}
              if classification else {"kind": "regression", "unit": "cycles", "label": spec.label})
    role = lambda r: {"dataset": data[r].get("dataset") or data["dataset"], "domains": data[r].get("domains"),  # noqa: E731
                      "split": data[r].get("split")}
    return {
        "task": {"name": task_name, "type": "classification" if classification else "regression", "options": task},
        "modality": "timeseries",
        "encoder": {"name": meta["encoder"], "options": meta.get("options") or {}},
        "input": {"signals": list(spec.features) or ["values"], "window": meta["seq_len"], "channels": meta["c_in"],
                  "layout": "[batch, time, signal]", "group_by": spec.row_group if spec.normalize == "group" else None,
                  "normalize": spec.normalize, "normalizer": normalizer},
        "output": output,
        "lineage": {"run_dir": str(run_dir.resolve()), "source": role("source"), "target": role("target"),
                    "test": role("test"), "pretrained": config.get("pretrained"),
                    "adaptation": meta.get("adaptation"), "strategy": config.get("strategy"), "seed": config.get("seed")},
        "metrics": metrics,
    }
