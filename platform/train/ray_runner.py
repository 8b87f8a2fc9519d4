"""The same ``train_loop(config)`` under Ray Train's TorchTrainer: N data-parallel workers (CPU with
gloo, or one GPU each with NCCL), on an embedded local Ray or a running cluster."""

from __future__ import annotations

import tempfile
from pathlib import Path


def _worker(job: dict) -> None:
    """Runs in every Ray Train worker."""
    import ray.train
    import ray.train.torch
    import torch

    config = job["config"]
    torch.set_num_threads(job["threads"])  # NOTE: as many intra-op threads as the worker has CPUs

    from ._dist import Dist
    from .run import train_loop

    ctx = ray.train.get_context()
    dist = Dist(ctx.get_world_rank(), ctx.get_world_size())
    device = ray.train.torch.get_device() if config["device"] != "cpu" else None
    data = None
    if job.get("streams"):  # this worker's shard of the training stream; the whole validation stream
        from .data import prepare_data

        data = prepare_data(config, streams={**job["streams"], **{
            name: ray.train.get_dataset_shard(name) for name in ("source_train", "source_val")}})

    metrics = train_loop(config, data=data, dist=dist, device=device, checkpointer=_RayCheckpointer(dist),
                         ray_worker=True)
    nodes = [ray.get_runtime_context().get_node_id()] * dist.world
    if dist.world > 1:
        torch.distributed.all_gather_object(nodes, nodes[0])
    metrics["ray_nodes"] = len(set(nodes))  # how many machines the worker group spanned
    final = {"final": True, **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if dist.is_main:  # NOTE: Train V2 keeps only metrics that come with a checkpoint
            import json

            Path(tmp, "metrics.json").write_text(json.dumps(final, default=float))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(final, checkpoint=checkpoint)


class _RayCheckpointer:
    """Every epoch every worker reports (Ray Train's barrier); rank 0 attaches the training state:
    model, optimizer, scheduler, epoch, early-stopping state. A restarted worker group loads it."""

    def __init__(self, dist) -> None:
        self.dist = dist

    def load(self) -> dict | None:
        import ray.train
        import torch

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return torch.load(Path(folder) / "state.pt", map_location="cpu", weights_only=True)

    def save(self, state: dict, record: dict) -> None:
        import ray.train
        import torch

        metrics = {k: v for k, v in record.items() if isinstance(v, (int, float, bool))}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.dist.is_main:
                torch.save(state, Path(tmp) / "state.pt")
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)


def fit_on_ray(config: dict, *, workers: int = 1, gpus_per_worker: float = 0, address: str | None = None,
               cpus_per_worker: float = 1, storage: str | None = None, max_failures: int = 0) -> dict:
    """Trains ``config`` with ``workers`` Ray Train workers; returns rank 0's final metrics.

    ``address``: ``None`` starts an embedded local Ray; ``"auto"`` joins the running cluster;
    ``ray://HOST:10001`` connects a client. ``max_failures``: worker-group restarts allowed; each
    restart resumes from the last epoch's checkpoint.
    """
    from .._ray import ensure_ray, require_gpus, run_storage, torch_trainer
    from ..catalog.store import resolve_root
    from .tracking import tracking_uri

    ensure_ray(address)
    require_gpus(workers, gpus_per_worker)  # before a streamed source is indexed and normalized
    # NOTE: workers may run in other folders (or on other machines): send absolute paths
    config = {**config, "catalog": str(resolve_root(config.get("catalog"))),
              "run_dir": str(Path(config["run_dir"]).resolve()) if config.get("run_dir") else None}
    uri = tracking_uri(config)
    config["tracking"] = {**(config.get("tracking") or {}), "mlflow": uri is not None, "uri": uri}
    job = {"config": config, "threads": max(1, int(cpus_per_worker))}
    datasets = {}
    if config["data"]["streaming"]["enabled"]:  # index, split and normalize once, here; stream in the workers
        from .._ray import read_cpus
        from .data import source_streams

        streams = source_streams(config, read_cpus=read_cpus(workers, cpus_per_worker, "data.streaming.enabled"))
        datasets = {name: streams.pop(name) for name in ("source_train", "source_val")}
        job["streams"] = streams
    name = Path(config["run_dir"]).name if config.get("run_dir") else "transferline"
    with run_storage(storage) as storage_path:  # a temporary one goes when the run is done
        result = torch_trainer(_worker, job, name=name, storage=storage_path, workers=workers,
                               cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, datasets=datasets,
                               split=["source_train"], max_failures=max_failures).fit()
    if result.error:
        raise result.error
    metrics = dict(result.metrics or {})
    metrics.pop("final", None)
    return metrics
