"""Weights as safetensors plus a JSON description; loading never unpickles."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn


def save_module(directory: Path, name: str, module: nn.Module, meta: dict) -> None:
    """Writes ``<name>.safetensors`` and ``<name>.json`` atomically (temp files, then rename)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        save_file(state, os.path.join(tmp, "w"))
        Path(tmp, "m").write_text(json.dumps(meta, indent=2, default=str))
        os.replace(os.path.join(tmp, "w"), directory / f"{name}.safetensors")
        os.replace(os.path.join(tmp, "m"), directory / f"{name}.json")


def load_state(directory: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file

    directory = Path(directory)
    weights, meta = directory / f"{name}.safetensors", directory / f"{name}.json"
    if not weights.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no {name}.safetensors / {name}.json in {directory}")
    return load_file(str(weights)), json.loads(meta.read_text())


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def fresh_run_dir(path: Path) -> Path:
    """An empty run directory (an earlier run at the same path is moved aside, then removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
