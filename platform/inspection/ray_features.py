"""Patch features computed by a pool of Ray actors, the images read, decoded and preprocessed in
Ray Data read tasks (the streaming path of :mod:`transferline.data.sample_stream`): no process
holds the dataset's images, and the features come back to the driver, which fits the memory bank
or the Gaussians on them."""

from __future__ import annotations

import numpy as np
import torch

from .anomaly import AnomalyConfig


class _Extractor:
    """A Ray Data actor: the backbone built once, then patch features of every batch it is handed."""

    def __init__(self, config: dict, spec, threads: int) -> None:
        from .anomaly import build_features

        torch.set_num_threads(threads)
        self.features = build_features(AnomalyConfig(**config), spec)

    def __call__(self, batch: dict) -> dict:
        with torch.no_grad():
            f = self.features(torch.from_numpy(np.ascontiguousarray(batch["x"])))
        return {"features": f.numpy(), "number": batch["number"]}


def patch_features_on_ray(catalog, dataset: str, spec, numbers: np.ndarray, config: AnomalyConfig, *,
                          workers: int = 2, address: str | None = None, cpus_per_worker: float = 1,
                          samples_per_task: int | None = None) -> tuple[torch.Tensor, dict]:
    """Patch features ``[len(numbers), D, h, w]`` of the images ``numbers`` (places in the dataset's
    read order), in that order, from ``workers`` actors; and ``{"workers", "cluster_nodes"}``. Read
    tasks hold ``samples_per_task`` images (default: enough tasks for every actor, at most 64 each)."""
    from dataclasses import asdict

    import ray

    from .._ray import ensure_ray
    from ..data.sample_stream import plan_samples

    ensure_ray(address)
    per_task = samples_per_task or min(64, max(1, len(numbers) // (2 * workers)))
    plan = plan_samples(catalog, dataset, spec, split=None, domains=None, classes=None, samples_per_task=per_task)
    nodes = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    features = plan.dataset_of(np.asarray(numbers), seed=0, shuffle=False, num_cpus=0.25).map_batches(
        _Extractor, fn_constructor_kwargs={"config": asdict(config), "spec": spec,
                                           "threads": max(1, int(cpus_per_worker))},
        batch_size=config.batch_size, concurrency=workers, num_cpus=cpus_per_worker)
    got, order = [], []
    for batch in features.iter_batches(batch_size=None, batch_format="numpy"):
        got.append(batch["features"])
        order.append(batch["number"])
    f, order = np.concatenate(got), np.concatenate(order)
    place = {int(n): i for i, n in enumerate(order)}
    if sorted(place) != sorted(int(n) for n in numbers):
        raise RuntimeError(f"Ray returned features of {len(place)} images, {len(numbers)} were asked for")
    return torch.from_numpy(f[[place[int(n)] for n in numbers]]), {"workers": workers, "cluster_nodes": len(nodes)}
