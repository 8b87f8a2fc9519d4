"""A tagger trained by Ray Train workers: each reads the dataset from the catalog and draws its own
batches, or (``stream``) iterates its own shard of the training texts streamed through Ray Data
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
    from .spans import load_tagged
    from .tagger import TagConfig, fit_tagger

    torch.set_num_threads(job["threads"])
    ctx = ray.train.get_context()
    dist = Dist(ctx.get_world_rank(), ctx.get_world_size())
    config = TagConfig(**job["config"])
    if job.get("stream"):
        from .stream import TagStream

        train = TagStream(ray.train.get_dataset_shard("train"), job["stream"]["n"], job["stream"]["tag_names"])
        val = job["stream"]["val"]
    else:
        data = load_tagged(Catalog(job["catalog"]), job["dataset"], config.depth)
        rest, _ = data.holdout(job["holdout"], job["split_seed"])
        train, val = rest.holdout(job["val_fraction"], job["split_seed"] + 1)
    device = ray.train.torch.get_device() if job["gpu"] else "cpu"
    tagger, _, fit = fit_tagger(train, val, config, dist=dist, device=device)
    report_weights(dist, tagger, {**fit, "tags": tagger.tag_names})


def fit_tagger_on_ray(catalog, dataset: str, config, *, workers: int = 2, holdout: float = 0.1,
                      val_fraction: float = 0.1, split_seed: int = 0, address: str | None = None,
                      cpus_per_worker: float = 1, plan=None, val=None, gpus_per_worker: float = 0):
    """``(tagger, spec, fit record)`` from ``workers`` Ray Train workers training on ``dataset``'s
    training texts (the split of :func:`~transferline.tagging.run.fit_tagging`); with ``plan`` (a
    :class:`~.stream.TagPlan`) the training texts stream through Ray Data and the validation
    texts (``val`` where the caller has read them already) go to the workers in the job."""
    from dataclasses import asdict

    from .._ray import ensure_ray, read_cpus, reported_weights, train_workers
    from .tagger import build_tagger, tag_spec

    ensure_ray(address)
    job = {"catalog": str(Path(catalog.root).resolve()), "dataset": dataset, "config": asdict(config),
           "holdout": holdout, "val_fraction": val_fraction, "split_seed": split_seed,
           "threads": max(1, int(cpus_per_worker)), "gpu": gpus_per_worker > 0}
    datasets = None
    if plan is not None:
        datasets = {"train": plan.dataset(tag_spec(config), seed=config.seed,
                                          num_cpus=read_cpus(workers, cpus_per_worker, "--stream"))}
        job["stream"] = {"n": len(plan.split["train"]), "tag_names": plan.tag_names,
                         "val": plan.texts("val") if val is None else val}
    (state, fit), metrics = train_workers(_worker, job, reported_weights, name="tagger-fit", workers=workers,
                                          cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, datasets=datasets)
    tagger, spec = build_tagger(config, fit.pop("tags"))
    tagger.load_state_dict(state)
    fit["workers"] = metrics.get("workers")
    return tagger.eval(), spec, fit
