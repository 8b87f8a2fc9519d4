"""A surrogate fitted by Ray Train workers: the leave-one-run-out folds and the final ensemble's
members are shared out among them (gloo gathers the shares), so the result is the one a single
process computes, member for member."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .surrogate import SurrogateConfig
from .table import ProcessData


def _shares(n: int, world: int) -> list[range]:
    bounds = np.linspace(0, n, world + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _worker(job: dict) -> None:
    import ray
    import ray.train
    import torch
    from safetensors.torch import save_file

    from .evaluate import held_out_run
    from .surrogate import fit_surrogate, from_state, merge

    torch.set_num_threads(job["threads"])
    data, config = job["data"], SurrogateConfig(**job["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    folds = {i: held_out_run(data, config, i) for i in range(rank, len(data.runs), world)} if job["evaluate"] else {}
    share = fit_surrogate(data, config, members=_shares(config.members, world)[rank])
    state = {k: v.detach() for k, v in share.state_dict().items()}
    node = ray.get_runtime_context().get_node_id()
    gathered = [None] * world
    if world > 1:
        torch.distributed.all_gather_object(gathered, (folds, state, node))
    else:
        gathered = [(folds, state, node)]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            parts = [from_state(part_state) for _, part_state, _ in gathered]
            save_file({k: v.contiguous() for k, v in merge(parts).state_dict().items()}, str(Path(tmp) / "model.safetensors"))
            held = {i: v for f, _, _ in gathered for i, v in f.items()}
            arrays = {f"{key}_{i}": np.asarray(v[key]) for i, v in held.items() for key in ("mean", "lo", "hi")}
            np.savez(Path(tmp) / "held_out.npz", **arrays)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({"workers": world, "ray_nodes": len({g[2] for g in gathered})}, checkpoint=checkpoint)


def fit_on_ray(data: ProcessData, config: SurrogateConfig, *, workers: int = 2, address: str | None = None,
               cpus_per_worker: float = 1, evaluate: bool = True):
    """``(model, held-out predictions or None, {"workers", "ray_nodes"})`` from ``workers`` Ray Train workers."""
    from dataclasses import asdict

    from safetensors.torch import load_file

    from .._ray import ensure_ray, train_workers
    from .surrogate import from_state

    ensure_ray(address)
    job = {"data": data, "config": asdict(config), "evaluate": evaluate, "threads": max(1, int(cpus_per_worker))}

    def read(folder: Path):
        npz = np.load(folder / "held_out.npz")
        held = None
        if evaluate:
            held = {key: np.stack([npz[f"{key}_{i}"] for i in range(len(data.Y))]) for key in ("mean", "lo", "hi")}
        return load_file(str(folder / "model.safetensors")), held

    (state, held), metrics = train_workers(_worker, job, read, name="process-fit", workers=workers,
                                           cpus_per_worker=cpus_per_worker)
    model = from_state(state)
    return model, held, {k: v for k, v in metrics.items() if k in ("workers", "ray_nodes")}
