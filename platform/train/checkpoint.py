"""Weights as safetensors plus a JSON description; loading never unpickles."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import TransferlineError

# NOTE: a run directory is replaced only if it holds this marker: we never delete a folder we did not make.
RUN_MARKER = ".transferline-run"


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
        raise TransferlineError(f"no {name}.safetensors / {name}.json in {directory}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged files
        raise TransferlineError(f"cannot read {weights} ({type(exc).__name__}: {str(exc)[:120]})") from None
    try:
        info = json.loads(meta.read_text())
    except ValueError as exc:
        raise TransferlineError(f"cannot read {meta} (invalid JSON: {exc})") from None
    if not isinstance(info, dict):
        raise TransferlineError(f"cannot read {meta}: expected a JSON object")
    return state, info


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def check_run_dir(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """``path`` resolved, if it may become this run's directory; raises TransferlineError naming it if
    not: it is the current folder or holds it, it holds one of the run's ``inputs`` (e.g. the
    pretrained encoder), or it is a folder with contents but no run marker (not ours to replace)."""
    path = Path(path).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise TransferlineError(f"--run-dir {path} is the current folder or holds it; give a folder of its own, "
                                "e.g. runs/my-run")
    for item in inputs:
        if item is None:
            continue
        used = Path(item).expanduser().resolve()
        if used == path or path in used.parents:
            raise TransferlineError(f"--run-dir {path} holds {used}, an input of this run; give another folder")
    if path.exists() and not path.is_dir():
        raise TransferlineError(f"--run-dir {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / RUN_MARKER).is_file():
        raise TransferlineError(f"--run-dir {path} is not empty and is not a transferline run folder (no {RUN_MARKER});"
                                " nothing was deleted: give a new folder, or empty this one yourself")
    return path


def fresh_run_dir(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """An empty run directory holding the run marker. An earlier run at the same path (one with the
    marker) is moved aside, then removed; anything else is refused (see :func:`check_run_dir`)."""
    path = check_run_dir(path, inputs)
    if path.is_dir() and any(path.iterdir()):
        trash = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / RUN_MARKER).write_text(json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid()}))
    return path
