"""Starting or joining Ray the same way for training and serving."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, metrics_port: int | None = None,
               worker_niceness: int | None = 0) -> None:
    """Joins the running Ray of this process, the cluster at ``address`` or $RAY_ADDRESS, or starts a
    fresh embedded local Ray on loopback. A driver joining a cluster on 127.0.0.1 stays on loopback.

    An embedded Ray listens on 127.0.0.1 only (GCS, raylet, workers, agents): nothing of it is
    reachable from another machine. It collects no metrics unless ``metrics_port`` is given; then
    its metrics agent answers Prometheus on ``127.0.0.1:metrics_port/metrics``. Its workers run at
    ``worker_niceness`` (None: Ray's default, 15; ``$RAY_worker_niceness`` wins over both). A
    cluster's operator decides its own binding, metrics and niceness (``RAY_worker_niceness`` on
    every node).
    """
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # NOTE: Ray takes its node address from the machine's outward interface while "cluster" mode is
    # on (Linux's default), and every server then listens there or on all interfaces; with it off,
    # on 127.0.0.1 only. The embedded Ray turns it off, in this process (Ray read the variable when
    # imported) and in the processes ray.init starts (they read it from the environment). A driver
    # joining a running cluster keeps it as the environment says: with it off, joining one by
    # address failed ("No node info found matching attributes: '127.0.0.1'", test_two_nodes.py).
    cluster_mode = ray_constants.env_bool(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR,
                                          not ray_constants.IS_WINDOWS_OR_OSX)
    ray_constants.ENABLE_RAY_CLUSTER = bool(address) and cluster_mode
    env = {}  # set while ray.init starts the embedded Ray's processes
    if not address:
        env[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
        # NOTE: an embedded Ray has no dashboard to read metrics, and collecting them anyway slowed
        # training in the worker on 2 cores. The embedded Ray's processes inherit these settings.
        if metrics_port is None:
            os.environ.setdefault("RAY_enable_metrics_collection", "0")
        else:
            os.environ["RAY_enable_metrics_collection"] = "1"
        os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
        # NOTE: Ray starts its workers at niceness 15, below everything else on the machine: a
        # training worker's two intra-op threads then waited on each other whenever any process
        # woke, and its steps took 1.3-1.4x as long as in-process on 2 cores (at niceness 0: 1.03x
        # on a 40-epoch job, 1.09x on a 300-epoch one, benchmarks/results/train_scaling.json).
        # Serving is the other way round: with the replicas, Serve's controller and its other
        # actors at niceness 0 beside the load, Serve answered 0.55x a plain server at 32 clients
        # against 0.58x at 15 (serve_load.py, same runs, noisy), so Serve keeps Ray's default
        # (serve.runtime.start).
        # NOTE: Ray Train's controller polls its workers every 2 s by default, and a finished run
        # waited for the next poll to be noticed.
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    niceness = None if address or worker_niceness is None or "RAY_worker_niceness" in os.environ \
        else str(worker_niceness)
    loopback = not address or (not address.startswith("ray://") and address.split(":")[0] in ("127.0.0.1", "localhost"))
    options = {"_node_ip_address": "127.0.0.1"} if loopback else {}
    if metrics_port is not None and not address:
        options["_metrics_export_port"] = metrics_port
    if niceness is not None:  # read by the raylet as it starts: not left for a later Ray of this process
        env["RAY_worker_niceness"] = niceness
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        ray.init(address=address or "local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, **options)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def add_ray_arguments(parser, title: str, workers: str, gpus: bool = False) -> None:
    """The --workers / --address / --cpus-per-worker (and, with ``gpus``, --gpus-per-worker)
    options of a command that can run on Ray."""
    group = parser.add_argument_group(title)
    group.add_argument("--workers", type=int, help=workers)
    group.add_argument("--address", help="Ray cluster: 'auto', or ray://HOST:10001 (default: an embedded local Ray)")
    group.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each worker reserves (default 1)")
    if gpus:
        group.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs each worker reserves (NCCL); "
                                                                            "0: CPU, gloo (default 0)")


def read_cpus(workers: int, cpus_per_worker: float, option: str) -> float:
    """CPUs each Ray Data read task takes beside ``workers`` training workers (at most 1); a clear
    error naming ``option`` where the workers take every CPU of the cluster (reads would never run)."""
    import ray

    from .errors import TransferlineError

    cpus = ray.cluster_resources().get("CPU", 0)
    free = cpus - workers * cpus_per_worker
    if free <= 0:
        raise TransferlineError(
            f"{option}: Ray Data needs CPU beside the training workers, but the cluster has {cpus:g} CPUs and "
            f"{workers} workers x {cpus_per_worker:g} take them all; give the workers fewer CPUs or add a node")
    return min(1.0, free)


def require_gpus(workers: int, gpus_per_worker: float) -> None:
    """Refuses, by the option's name, ``workers`` x ``gpus_per_worker`` GPUs where the running Ray
    cluster has fewer (Ray Train would wait for them forever)."""
    if not gpus_per_worker:
        return
    import ray

    from .errors import TransferlineError

    have = ray.cluster_resources().get("GPU", 0)
    if have < workers * gpus_per_worker:
        raise TransferlineError(f"--gpus-per-worker {gpus_per_worker:g}: {workers} workers need "
                                f"{workers * gpus_per_worker:g} GPUs; the Ray cluster has {have:g}")


@contextmanager
def run_storage(storage: str | None = None):
    """Where a Ray Train run keeps its checkpoints: ``storage`` as given (kept), or a fresh folder
    under the temporary directory that is removed when the run is done, failed or not, so that
    repeated runs do not fill the disk with checkpoints nobody reads again."""
    if storage:
        yield storage
        return
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="transferline-ray-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def torch_trainer(worker, job: dict, *, name: str, storage: str, workers: int, cpus_per_worker: float = 1,
                  gpus_per_worker: float = 0, datasets: dict | None = None, split: str | list[str] = "all",
                  max_failures: int = 0):
    """A TorchTrainer running ``worker(job)`` in ``workers`` Ray Train workers (gloo on CPU, NCCL on
    GPU), its checkpoints under ``storage``; ``datasets``: Ray Datasets, those named in ``split``
    sharded equally between the workers (``get_dataset_shard``). Refuses more GPUs than the cluster
    has (:func:`require_gpus`)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    require_gpus(workers, gpus_per_worker)
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    return TorchTrainer(worker, train_loop_config=job,
                        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                                     resources_per_worker=resources),
                        datasets=datasets or None, dataset_config=DataConfig(datasets_to_split=split),
                        run_config=RunConfig(name=name, storage_path=storage,
                                             failure_config=FailureConfig(max_failures=max_failures),
                                             checkpoint_config=CheckpointConfig(num_to_keep=1)))


def train_workers(worker, job: dict, read, *, name: str, workers: int, cpus_per_worker: float = 1,
                  gpus_per_worker: float = 0, datasets: dict | None = None):
    """Runs ``worker(job)`` in ``workers`` Ray Train workers (:func:`torch_trainer`) and returns
    ``(read(folder), metrics)``: ``read`` takes the folder of rank 0's final checkpoint, which is gone
    afterwards; a worker's error is raised. ``datasets``: Ray Datasets each worker reads its own
    equal shard of."""
    with run_storage() as storage:
        result = torch_trainer(worker, job, name=name, storage=storage, workers=workers,
                               cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                               datasets=datasets).fit()
        if result.error:
            raise result.error
        with result.checkpoint.as_directory() as folder:
            return read(Path(folder)), dict(result.metrics or {})


def report_weights(dist, module, record: dict, metrics: dict | None = None) -> None:
    """Ends a Ray Train worker's loop: rank 0 reports ``module``'s weights and ``record`` (JSON) as
    the run's checkpoint; every worker reports ``metrics`` (default: the number of workers)."""
    import json
    import tempfile

    import ray.train
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if dist.is_main:
            save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
                      str(Path(tmp) / "weights.safetensors"))
            Path(tmp, "record.json").write_text(json.dumps(record, default=float))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics or {"workers": dist.world}, checkpoint=checkpoint)


def reported_weights(folder: Path) -> tuple[dict, dict]:
    """The weights and record in a checkpoint folder rank 0 reported with :func:`report_weights`."""
    import json

    from safetensors.torch import load_file

    return load_file(str(folder / "weights.safetensors")), json.loads((folder / "record.json").read_text())
