"""A detector trained by Ray Train workers: each reads the dataset from the catalog, draws its own
batches of the training images, and gradients are averaged after every step (gloo on CPU, NCCL on
GPU), so the workers hold the same weights throughout; rank 0 returns them."""

from __future__ import annotations

from pathlib import Path


def _worker(job: dict) -> None:
    import ray
    import ray.train
    import torch

    from .._ray import report_weights
    from ..catalog import Catalog
    from ..data import ImageInput
    from ..data.factory import load_samples
    from ..train._dist import Dist
    from .detection import DetectorConfig, box_classes, fit_detector
    from .run import split_detection
    from .store import load_detector

    torch.set_num_threads(job["threads"])
    config = DetectorConfig(**job["config"])
    ctx = ray.train.get_context()
    dist = Dist(ctx.get_world_rank(), ctx.get_world_size())
    start, spec = None, ImageInput(size=config.size)
    if job["init"]:
        start, spec, _ = load_detector(job["init"])
    samples = load_samples(Catalog(job["catalog"]), job["dataset"], spec)
    train, val, _ = split_detection(samples, job["holdout"], job["val_fraction"])
    if job["per_class"]:
        train = train.per_class(job["per_class"], config.seed)
    device = ray.train.torch.get_device() if job["gpu"] else "cpu"
    model, fit = fit_detector(train, val, config, classes=box_classes(samples), model=start, dist=dist, device=device)
    nodes = [ray.get_runtime_context().get_node_id()] * dist.world
    if dist.world > 1:
        torch.distributed.all_gather_object(nodes, nodes[0])
    report_weights(dist, model, {**fit, "classes": model.classes}, {"workers": dist.world, "ray_nodes": len(set(nodes))})


def fit_detector_on_ray(catalog, dataset: str, config, *, workers: int = 2, holdout: float = 0.2,
                        val_fraction: float = 0.1, per_class: int | None = None, init: str | None = None,
                        address: str | None = None, cpus_per_worker: float = 1, gpus_per_worker: float = 0):
    """``(model, fit record)`` from ``workers`` Ray Train workers training on ``dataset``'s split
    (:func:`~transferline.inspection.run.split_detection`); the record gains ``workers`` and ``ray_nodes``."""
    from .._ray import ensure_ray, reported_weights, train_workers
    from ..data import ImageInput
    from .detection import DetectorConfig, build_detector

    ensure_ray(address)
    job = {"catalog": str(Path(catalog.root).resolve()), "dataset": dataset, "config": config.to_dict(),
           "holdout": holdout, "val_fraction": val_fraction, "per_class": per_class,
           "init": str(Path(init).resolve()) if init else None, "threads": max(1, int(cpus_per_worker)),
           "gpu": gpus_per_worker > 0}
    (state, fit), metrics = train_workers(_worker, job, reported_weights, name="detector-fit", workers=workers,
                                          cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    spec = ImageInput(size=config.size)
    if init:
        from .store import detector_spec

        spec = detector_spec(init)[0]
    model = build_detector(DetectorConfig(**{**config.to_dict(), "pretrained": None}), fit.pop("classes"), spec)
    model.load_state_dict(state)
    fit.update({k: v for k, v in metrics.items() if k in ("workers", "ray_nodes")})
    return model.eval(), fit
