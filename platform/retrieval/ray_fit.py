"""A retriever fine-tuned by Ray Train workers: each reads the pairs from the catalog and draws its
own batches, or (``stream``) iterates its own shard of the training pairs streamed through Ray Data
(:mod:`.stream`); gradients are averaged after every step, so the workers hold the same weights;
rank 0 returns them."""

from __future__ import annotations

from pathlib import Path


def _worker(job: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch
    import torch

    from .._ray import report_weights
    from ..catalog import Catalog
    from ..train._dist import Dist
    from .dense import PairConfig, fit_pairs
    from .pairs import load_pairs

    torch.set_num_threads(job["threads"])
    ctx = ray.train.get_context()
    dist = Dist(ctx.get_world_rank(), ctx.get_world_size())
    if job.get("stream"):
        from ..data.sample_stream import ShardStream

        train, val = ShardStream(ray.train.get_dataset_shard("train"), job["stream"]["n"]), job["stream"]["val"]
    else:
        pairs = load_pairs(Catalog(job["catalog"]), job["dataset"])
        rest, _ = pairs.split(job["holdout"], job["split_seed"])
        train, val = rest.split(job["val_fraction"], job["split_seed"] + 1)
    device = ray.train.torch.get_device() if job["gpu"] else "cpu"
    encoder, _, fit = fit_pairs(train, val, PairConfig(**job["config"]), dist=dist, device=device)
    report_weights(dist, encoder, fit)


def fit_pairs_on_ray(catalog, dataset: str, config, *, workers: int = 2, holdout: float = 0.2,
                     val_fraction: float = 0.1, split_seed: int = 0, address: str | None = None,
                     cpus_per_worker: float = 1, plan=None, val=None, gpus_per_worker: float = 0):
    """``(encoder, spec, fit record)`` from ``workers`` Ray Train workers fine-tuning on
    ``dataset``'s training pairs (the split of :func:`~transferline.retrieval.run.fit_retrieval`);
    with ``plan`` (a :class:`~.stream.PairPlan`) the training pairs stream through Ray Data and
    the validation pairs (``val`` where the caller has read them already) go to the workers in the job."""
    from dataclasses import asdict

    from .._ray import ensure_ray, read_cpus, reported_weights, train_workers
    from .dense import build_encoder, pair_spec

    ensure_ray(address)
    job = {"catalog": str(Path(catalog.root).resolve()), "dataset": dataset, "config": asdict(config),
           "holdout": holdout, "val_fraction": val_fraction, "split_seed": split_seed,
           "threads": max(1, int(cpus_per_worker)), "gpu": gpus_per_worker > 0}
    datasets = None
    if plan is not None:
        datasets = {"train": plan.dataset(pair_spec(config), seed=config.seed,
                                          num_cpus=read_cpus(workers, cpus_per_worker, "--stream"))}
        job["stream"] = {"n": len(plan.split["train"]), "val": plan.pairs("val") if val is None else val}
    (state, fit), metrics = train_workers(_worker, job, reported_weights, name="retriever-fit", workers=workers,
                                          cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, datasets=datasets)
    encoder, spec = build_encoder(config)
    encoder.load_state_dict(state)
    fit["workers"] = metrics.get("workers")
    return encoder.eval(), spec, fit
