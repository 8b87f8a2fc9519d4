"""A fitted surrogate on disk (a run folder the model registry can register) and back.

Run folder: ``model.safetensors`` (the ensemble), ``model.json`` (how to rebuild it, its set-points,
outcomes, the data's ranges and the observed runs), ``config.yaml``, ``metrics.json``
(leave-one-run-out). Written in a sibling staging folder and renamed into place: a crash leaves
no half-written run.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._fs import save_run
from ..errors import TransferlineError
from .surrogate import EnsembleMLP, SurrogateConfig, from_state
from .table import Outcome, ProcessData

KIND = "process_surrogate"
ATOL = 1e-5


def save_surrogate(out: str | os.PathLike, model: EnsembleMLP, data: ProcessData, config: SurrogateConfig,
                   metrics: dict) -> Path:
    """Writes the run folder ``out`` (which must not exist yet) atomically."""
    meta = {"kind": KIND, "dataset": data.dataset, "setpoints": data.setpoints,
            "outcomes": [o.to_dict() for o in data.outcomes], "context": [c.to_dict() for c in data.context],
            "surrogate": asdict(config), "ranges": data.ranges(),
            "observed": {"runs": data.runs, "X": data.X.tolist(),
                         "Y": [[None if np.isnan(v) else float(v) for v in row] for row in data.Y]}}
    return save_run(out, model.state_dict(), meta, {"data": {"dataset": data.dataset}, "surrogate": asdict(config)},
                    {**metrics, "epochs_run": config.epochs})


def load_surrogate(folder: str | os.PathLike) -> tuple[EnsembleMLP, dict]:
    """The eager ensemble and its ``model.json`` from a run folder or a registry version folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / "model.json").read_text())
    if meta.get("kind") != KIND:
        raise TransferlineError(f"{folder} holds no process surrogate (model.json kind {meta.get('kind')!r})")
    return from_state(load_file(str(folder / "model.safetensors"))), meta


def outcomes_of(meta: dict, key: str = "outcomes") -> list[Outcome]:
    """The surrogate's outcomes (or, with ``key="context"``, its context inputs)."""
    return [Outcome(**o) for o in meta.get(key) or []]


def observed(meta: dict) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(meta["observed"]["X"], dtype=np.float64)
    Y = np.array([[np.nan if v is None else v for v in row] for row in meta["observed"]["Y"]], dtype=np.float64)
    return X, Y


def describe_surrogate(run_dir: Path, out: Path) -> dict:
    """The registry's side of a surrogate run: copies the weights, exports TorchScript (set-points
    ``[n, d]`` → ``[members, n, outcomes, 2]``), checks it against the eager ensemble, and returns
    the entry fields."""
    from ..data import TabularInput
    from ..model_registry._export import export_mismatch, export_torchscript

    model, meta = load_surrogate(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for fname in ("model.safetensors", "model.json"):
        shutil.copyfile(run_dir / fname, out / fname)
    columns = meta["setpoints"] + [c["name"] for c in meta.get("context") or []]
    example = export_torchscript(model, TabularInput(tuple(columns)), out / "model.ts")
    mismatch = export_mismatch(model, example, out / "model.ts", ATOL)
    if mismatch is not None:
        raise TransferlineError(f"the exported surrogate differs from the eager one by {mismatch:.2e}")
    config = meta["surrogate"]
    return {"task": {"name": "process_outcome", "type": "process", "options": {}},
            "modality": "tabular",
            "encoder": {"name": "process/ensemble-mlp", "options": {"members": config["members"], "hidden": config["hidden"]}},
            "input": {"tabular": {"columns": columns,
                                  "ranges": meta["ranges"], **({"context": meta["context"]} if meta.get("context") else {})}},
            "output": {"kind": "outcomes", "outcomes": meta["outcomes"], "shape": ["members", "n", "outcomes", 2]},
            "lineage": {"run_dir": str(run_dir.resolve()), "dataset": meta["dataset"], "runs": len(meta["observed"]["runs"]),
                        "seed": config["seed"]},
            "metrics": metrics}
