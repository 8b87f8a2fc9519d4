"""The one training loop under Ray Train: one worker gives the in-process result, two workers
average their gradients, and the CLI runs it with --workers."""

from __future__ import annotations

import json
import re

import pytest
import torch

from ..conftest import REPO, write_fan_end


def _average_in_group(rank: int, world: int, init_file: str, out) -> None:
    from transferline.train._dist import Dist

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    module = torch.nn.Linear(3, 2)
    for p in module.parameters():
        p.grad = torch.full_like(p, float(rank + 1))
    Dist(rank, world).average_gradients(module)
    # NOTE: as lists, not tensors: a tensor crosses the queue as a file descriptor that the parent can
    # only pick up while this process still lives
    out.put([p.grad.tolist() for p in module.parameters()])
    torch.distributed.destroy_process_group()


def _average_with_a_part_unused(rank: int, world: int, init_file: str, out) -> None:
    """Rank 1's batch leaves the second layer without a gradient (an input absent from its batch)."""
    from transferline.train._dist import Dist

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    for i, p in enumerate(module.parameters()):
        if rank == 0 or i < 2:
            p.grad = torch.full_like(p, float(rank + 1))
    Dist(rank, world).average_gradients(module)
    out.put([p.grad.tolist() for p in module.parameters()])
    torch.distributed.destroy_process_group()


def _in_two_processes(target, tmp_path) -> list:
    """What ``target(rank, 2, init_file, queue)`` puts on the queue in each of two spawned processes."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(r, 2, str(tmp_path / "pg"), queue)) for r in range(2)]
    for p in procs:
        p.start()
    grads = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return grads


def test_a_parameter_without_gradient_on_one_worker(tmp_path):
    for g in _in_two_processes(_average_with_a_part_unused, tmp_path):
        first, second = [torch.tensor(x) for x in g[:2]], [torch.tensor(x) for x in g[2:]]
        assert all(torch.allclose(t, torch.full_like(t, 1.5)) for t in first)
        assert all(torch.allclose(t, torch.full_like(t, 0.5)) for t in second)  # rank 0's 1.0, averaged over 2


def test_gradients_are_averaged_across_workers(tmp_path):
    for g in _in_two_processes(_average_in_group, tmp_path):
        for grad in map(torch.tensor, g):
            assert torch.allclose(grad, torch.full_like(grad, 1.5))  # mean of 1 and 2


@pytest.fixture(scope="module")
def ray_cluster():
    import os

    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def _config(catalog, *extra):
    from transferline.train import load_config

    return load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                       [f"catalog={catalog.root}", "epochs=2", "optim.max_steps_per_epoch=8", "progress=false",
                        "target.labelled_units=0", "strategy=full", *extra])


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("ray-cat"))
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    return catalog


@pytest.mark.ray
def test_embedded_ray_trains_at_the_drivers_priority():
    """The embedded Ray that training starts runs its workers at the driver's niceness (at Ray's
    default of 15 a training worker's steps took 1.3-1.4x as long on 2 cores), and leaves no
    setting behind for a later Ray of the same process."""
    import os
    import subprocess
    import sys

    code = ("import os, ray; from transferline._ray import ensure_ray; ensure_ray(num_cpus=1); "
            "print(ray.get(ray.remote(lambda: os.nice(0)).remote()), os.nice(0), 'RAY_worker_niceness' in os.environ)")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_worker_niceness", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    worker, driver, left = done.stdout.split()[-3:]
    assert worker == driver and left == "False"


@pytest.mark.ray
@pytest.mark.slow
def test_one_ray_worker_matches_the_in_process_run(ray_cluster, sample, tmp_path, monkeypatch):
    import tempfile

    from transferline.train import fit_on_ray, train_loop

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    config = _config(sample)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker with one CPU: the same float summation order
    try:
        local = train_loop({**config, "run_dir": str(tmp_path / "local")})
    finally:
        torch.set_num_threads(threads)
    remote = fit_on_ray({**config, "run_dir": str(tmp_path / "ray")}, workers=1)
    for key in ("test_rmse", "test_score", "selection_value", "feature_mmd"):
        assert remote[key] == pytest.approx(local[key], rel=1e-4), key
    assert remote["best_epoch"] == local["best_epoch"]
    assert (tmp_path / "ray" / "model.safetensors").is_file()
    assert not list((tmp_path / "tmp").glob("transferline-ray-*")), "Ray Train's temporary storage was left behind"


def _on_two_workers(cli, mode: str, config: str, run_dir, *args, metric: str) -> None:
    """``transferline MODE --config CONFIG ARGS --workers 2`` (CONFIG in examples/configs, or a path):
    it must succeed on two CPU workers and report ``metric``."""
    code, out, err = cli(mode, "--config", REPO / "examples" / "configs" / config, *args, "--run-dir", run_dir,
                         "--workers", "2", "--quiet")
    assert code == 0, err
    assert f"{mode} on Ray Train: 2 worker(s), CPU" in out and metric in out


@pytest.mark.ray
@pytest.mark.slow
def test_cli_pretrain_with_two_workers(ray_cluster, sample, tmp_path, cli, monkeypatch):
    from mlflow.tracking import MlflowClient

    _on_two_workers(cli, "pretrain", "demo_pretrain.yaml", tmp_path / "pre", f"catalog={sample.root}", "epochs=2",
                    "optim.max_steps_per_epoch=6", "objective=masked", "--mlflow-uri", tmp_path / "store",
                    metric="val_loss")
    assert (tmp_path / "pre" / "encoder.safetensors").is_file()
    # tracked through Ray's setup_mlflow by rank 0 alone: one run, each epoch once
    client = MlflowClient(tracking_uri=(tmp_path / "store").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("transferline").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.params["mode"] == "pretrain"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")] == [1, 2]
    assert json.loads((tmp_path / "pre" / "mlflow.json").read_text())["run_id"] == runs[0].info.run_id
    code, _, err = cli("pretrain", "--config", REPO / "examples" / "configs" / "demo_pretrain.yaml",
                       "--address", "auto")
    assert code == 2 and "need --workers N" in err
    # more GPUs than the cluster has: refused by name at once (Ray Train would wait for them forever)
    code, _, err = cli("pretrain", "--config", REPO / "examples" / "configs" / "demo_pretrain.yaml",
                       f"catalog={sample.root}", "--run-dir", tmp_path / "gpu", "--workers", "2",
                       "--gpus-per-worker", "1", "--quiet")
    assert code == 2 and "--gpus-per-worker 1: 2 workers need 2 GPUs; the Ray cluster has 0" in err
    assert not (tmp_path / "gpu").exists()
    # a streamed source is refused the same way before it is indexed and normalized
    monkeypatch.setattr("transferline.train.data.source_streams",
                        lambda *a, **k: pytest.fail("the source was streamed before the GPU check"))
    code, _, err = cli("pretrain", "--config", REPO / "examples" / "configs" / "demo_pretrain.yaml",
                       f"catalog={sample.root}", "--run-dir", tmp_path / "gpu", "--workers", "2",
                       "data.streaming.enabled=true", "--gpus-per-worker", "1", "--quiet")
    assert code == 2 and "--gpus-per-worker 1: 2 workers need 2 GPUs; the Ray cluster has 0" in err


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_worker_resumes_from_its_last_checkpoint(ray_cluster, sample, tmp_path):
    import os
    import signal
    import threading
    import time

    import psutil

    from transferline.train import fit_on_ray

    config = _config(sample, "epochs=4", "optim.max_steps_per_epoch=80", "early_stopping.patience=10")
    reference = fit_on_ray(dict(config), workers=1)
    storage = tmp_path / "ray"
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(fit_on_ray(dict(config), workers=1, storage=str(storage),
                                                                   max_failures=2)))
    run.start()
    deadline = time.monotonic() + 180
    # the controller writes its snapshot once it has registered a checkpoint
    while time.monotonic() < deadline and not list(storage.rglob("checkpoint_manager_snapshot.json")):
        time.sleep(0.2)
    assert list(storage.rglob("checkpoint_manager_snapshot.json")), "no checkpoint was registered"
    workers = [p for p in psutil.process_iter(["pid", "cmdline"])
               if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]
    assert workers, "no Ray Train worker process found"
    for p in workers:
        os.kill(p.info["pid"], signal.SIGKILL)
    run.join(timeout=300)
    assert not run.is_alive()
    assert result["resumed_at_epoch"] >= 1, result  # restarted from a checkpoint, not from scratch
    assert result["epochs_run"] == 4 - result["resumed_at_epoch"]
    assert result["test_rmse"] == pytest.approx(reference["test_rmse"], rel=0.15), (result, reference)


@pytest.mark.ray
def test_streamed_source_trains_like_the_loaded_one(ray_cluster, sample, tmp_path):
    """Ray Data streams the source windows (in-process, and sharded over two Ray Train workers);
    the model reaches the in-memory run's metrics within seed noise."""
    from transferline.train import fit_on_ray, train_loop

    config = _config(sample, "epochs=3", "optim.max_steps_per_epoch=30")
    loaded = train_loop(dict(config))
    streamed = train_loop(_config(sample, "epochs=3", "optim.max_steps_per_epoch=30", "data.streaming.enabled=true"))
    sharded = fit_on_ray(_config(sample, "epochs=3", "optim.max_steps_per_epoch=30", "data.streaming.enabled=true",
                                 f"run_dir={tmp_path / 'sharded'}"), workers=2, cpus_per_worker=0.5)
    for metrics in (streamed, sharded):
        assert metrics["epochs_run"] == 3
        assert metrics["test_rmse"] == pytest.approx(loaded["test_rmse"], rel=0.1)
        assert metrics["selection_value"] == pytest.approx(loaded["selection_value"], rel=0.1)
    assert (tmp_path / "sharded" / "model.safetensors").is_file()


@pytest.mark.ray
def test_streaming_without_a_spare_cpu_is_refused(ray_cluster, sample):
    from transferline.errors import TransferlineError
    from transferline.train import fit_on_ray

    with pytest.raises(TransferlineError, match="Ray Data needs CPU beside the training workers"):
        fit_on_ray(_config(sample, "data.streaming.enabled=true"), workers=2, cpus_per_worker=1)


@pytest.mark.ray
@pytest.mark.slow
def test_image_run_with_two_ray_workers(ray_cluster, neu_catalog, tmp_path, cli):
    import json

    _on_two_workers(cli, "transfer", "neu_fewshot.yaml", tmp_path / "run", f"catalog={neu_catalog.root}",
                    "data.spec_options.size=[64,64]", "progress=false", "epochs=2", metric="test_accuracy")
    assert json.loads((tmp_path / "run" / "model.json").read_text())["input"]["image"]["size"] == [64, 64]


@pytest.mark.ray
@pytest.mark.slow
def test_images_stream_to_two_ray_workers(ray_cluster, neu_catalog, tmp_path, cli):
    """Self-supervised pretraining on images streamed from the catalog through Ray Data: each
    worker decodes its shard's images in read tasks; none loads the dataset."""
    import json

    _on_two_workers(cli, "pretrain", REPO / "benchmarks" / "configs" / "vision_ssl.yaml", tmp_path / "run",
                    f"catalog={neu_catalog.root}", "source.split=all", "data.spec_options.size=[64,64]",
                    "progress=false", "epochs=2", "data.streaming.enabled=true", "data.streaming.samples_per_task=16",
                    "--cpus-per-worker", "0.5", metric="val_loss")
    assert json.loads((tmp_path / "run" / "encoder.json").read_text())["input"]["image"]["size"] == [64, 64]


@pytest.mark.ray
def test_generic_two_channel_recordings_stream_to_two_ray_workers(ray_cluster, tmp_path, cli):
    """A newcomer's recordings (generic waveform reader, two channels each, a spec written in full)
    streamed from the catalog through Ray Data to two Ray Train workers."""
    import json

    lab = write_fan_end(tmp_path / "lab", two_channels=True)
    catalog = tmp_path / "catalog"
    code, _, err = cli("ingest", "waveforms", lab, "--name", "lab", "--catalog", catalog, "--pattern",
                       "{label}_{load}hp_*.npy", "--sample-rate", "12000", "--quiet")
    assert code == 0, err
    _on_two_workers(cli, "transfer", "demo_transfer.yaml", tmp_path / "run",
                    "data.dataset=lab", "data.spec={kind: waveforms, length: 512, label: label, domain: load}",
                    "source.domains=[0]", "target.domains=[3]", "test.domains=[3]", "source.split=all",
                    "target.split=all", "test.split=all", "test.last_only=false", "target.labelled_units=0",
                    "task=fault_diagnosis", "objective=supervised", "encoder=cnn_small", "epochs=2",
                    "adaptation=source_only", "strategy=full", "data.streaming.enabled=true",
                    f"catalog={catalog}", "--cpus-per-worker", "0.5", metric="test_accuracy")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["input"]["series"]["channels"] == 2 and meta["output"]["classes"] == ["B007", "IR007", "OR007"]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["loaded", "streamed"])
def test_text_run_with_two_ray_workers(ray_cluster, tmp_path, cli, streamed):
    """MiniLM text classification on a maintenance log, data-parallel over two Ray Train workers.
    Streamed: the log is also the source, tokenized in Ray Data read tasks and sharded between the
    workers; the few labelled target texts and the test set are read as usual (one log is source and
    target here: this checks the streaming path, not what transfer gains)."""
    import json

    from transferline.sample_data import maintenance_log

    catalog = tmp_path / "catalog"
    code, _, err = cli("ingest", "text", maintenance_log(tmp_path / "log.csv"), "--name", "log", "--catalog", catalog,
                       "--text-col", "note", "--label-col", "fault", "--quiet")
    assert code == 0, err
    # streamed, with LP-FT: each worker's head is fitted on both workers' shards of features
    stream = ["source.domains=[default]", "source.split=all", "data.streaming.enabled=true",
              "data.streaming.samples_per_task=8", "strategy=lp_ft", "task.options.hidden=0",
              "early_stopping.metric=last", "--cpus-per-worker", "0.5"] if streamed else \
        ["strategy.options.freeze_epochs=1"]
    _on_two_workers(cli, "transfer", "text_classification.yaml", tmp_path / "run", f"catalog={catalog}",
                    "data.spec_options.max_length=16", "target.per_class=4", "epochs=2", *stream,
                    metric="test_macro_f1")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["input"]["text"]["max_length"] == 16 and meta["output"]["classes"] == ["degraded", "failed", "routine"]
    if streamed:
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["probe_samples"] == metrics["train_samples"] and metrics["selection_metric"] == "last epoch"


@pytest.mark.ray
@pytest.mark.slow
def test_process_surrogate_on_two_workers_is_the_single_process_one(ray_cluster, tmp_path, cli, monkeypatch):
    """`process fit --workers 2`: folds and ensemble members are shared out between two Ray Train
    workers; the ensemble and its leave-one-run-out scores equal those of one process; the run's
    temporary checkpoint storage is gone once the model is read."""
    import json
    import tempfile

    import numpy as np

    from transferline.catalog import Catalog
    from transferline.process import SurrogateConfig, fit_surrogate, leave_one_run_out, load_process_data, predict
    from transferline.process.store import load_surrogate
    from transferline.sample_data import sample_path

    code, _, err = cli("ingest", "cnc-mill", sample_path("cnc_mill"), "--name", "cnc", "--catalog", tmp_path / "cat",
                       "--quiet")
    assert code == 0, err
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, out, err = cli("process", "fit", "--dataset", "cnc", "--catalog", tmp_path / "cat", "--out", tmp_path / "run",
                         "--members", "6", "--epochs", "60", "--workers", "2")
    assert code == 0, err
    assert not list((tmp_path / "tmp").glob("transferline-ray-*")), "Ray Train's temporary storage was left behind"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ray"] == {"workers": 2, "ray_nodes": 1}
    data = load_process_data(Catalog(tmp_path / "cat"), "cnc")
    config = SurrogateConfig(members=6, epochs=60)
    model, _ = load_surrogate(tmp_path / "run")
    np.testing.assert_allclose(predict(model, data.X), predict(fit_surrogate(data, config), data.X), atol=1e-5)
    single = leave_one_run_out(data, config)["metrics"]
    for outcome, scores in single.items():
        for key, value in scores.items():
            assert metrics["loeo"][outcome][key] == pytest.approx(value, abs=1e-6), (outcome, key)


@pytest.mark.ray
@pytest.mark.slow
def test_anomaly_features_from_two_ray_actors_are_the_in_process_ones(ray_cluster, tmp_path, cli):
    """`inspect fit --workers 2`: the good images stream through Ray Data to two feature actors; the
    fitted model is the one fitted in this process (same threshold, same test metrics), images
    standardized and padded to the square alike on both paths and the run recording both for serving."""
    import json

    from transferline.sample_data import sample_path

    catalog = tmp_path / "catalog"
    code, _, err = cli("ingest", "images", sample_path("magnetic_tile"), "--name", "tiles", "--catalog", catalog,
                       "--quiet")
    assert code == 0, err
    runs = {}
    for name, extra in (("local", []), ("ray", ["--workers", "2", "--cpus-per-worker", "0.5"])):
        code, out, err = cli("inspect", "fit", "--dataset", "tiles", "--good", "MT_Free", "--out", tmp_path / name,
                             "--size", "96", "96", "--holdout", "0.25", "--standardize", "--resize", "pad", "--catalog", catalog,
                             *extra)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
        image = json.loads((tmp_path / name / "model.json").read_text())["input"]["image"]
        assert image["standardize"] is True and image["resize"] == "pad"
    assert runs["ray"]["fit"]["ray"]["workers"] == 2
    assert runs["ray"]["fit"]["threshold"] == pytest.approx(runs["local"]["fit"]["threshold"], rel=1e-4)
    assert runs["ray"]["image_auroc"] == runs["local"]["image_auroc"]
    assert runs["ray"]["pixel_auroc"] == pytest.approx(runs["local"]["pixel_auroc"], abs=1e-4)


@pytest.mark.ray
@pytest.mark.slow
def test_a_detector_trains_on_two_ray_train_workers(ray_cluster, tmp_path):
    """`inspect detect --workers 2` underneath: two Ray Train workers, gradients averaged, rank 0's weights back."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data import ImageInput
    from transferline.data.factory import load_samples
    from transferline.inspection.detection import DetectorConfig, detect
    from transferline.inspection.ray_detect import fit_detector_on_ray
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path / "cat")
    catalog.ingest("neu", create_reader("neu-det")(sample_path("neu")))
    neu = load_samples(catalog, "neu", ImageInput(size=(64, 64)))
    model, fit = fit_detector_on_ray(catalog, "neu", DetectorConfig(size=(64, 64), epochs=2, batch_size=4), workers=2,
                                     per_class=2)
    assert fit["workers"] == 2 and fit["epochs_run"] == 2 and fit["train_images"] == 12
    assert model.classes == neu.classes
    assert isinstance(detect(model, [neu.images[0].as_py()], ImageInput(size=(64, 64)))[0], list)


@pytest.mark.ray
@pytest.mark.slow
def test_a_retriever_fine_tunes_on_two_ray_train_workers(ray_cluster, tmp_path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.retrieval import Embedder, PairConfig
    from transferline.retrieval.ray_fit import fit_pairs_on_ray
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path / "cat")
    catalog.ingest("mn", create_reader("maintnet")(sample_path("maintnet")))
    encoder, spec, fit = fit_pairs_on_ray(catalog, "mn", PairConfig(epochs=1, batch_size=8, max_length=16), workers=2)
    assert fit["workers"] == 2 and fit["epochs_run"] == 1 and 0 < fit["val_mrr"] <= 1
    assert Embedder(encoder, spec)(["OIL LEAK"]).shape == (1, encoder.out_dim)


@pytest.mark.ray
@pytest.mark.slow
def test_retrieval_pairs_stream_to_two_ray_train_workers(ray_cluster, tmp_path, cli):
    """`retrieve fit --workers 2 --stream`: the training pairs stream from the catalog through Ray
    Data, each worker iterating its own shard; the run folder holds the encoder and the index."""
    from transferline.sample_data import sample_path

    home = ["--catalog", tmp_path / "cat"]
    assert cli("ingest", "maintnet", sample_path("maintnet"), "--name", "mn", *home, "--quiet")[0] == 0
    args = ["retrieve", "fit", "--dataset", "mn", "--epochs", "1", "--batch-size", "8", "--max-length", "16", *home]
    code, out, err = cli(*args, "--workers", "2", "--stream", "--cpus-per-worker", "0.5", "--out", tmp_path / "run")
    assert code == 0, err
    streamed = re.search(r"mn: (\d+) training pairs \(streamed through Ray Data\), (\d+) validation", out)
    assert streamed, out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    fit = metrics["fit"]
    assert fit["workers"] == 2 and fit["epochs_run"] == 1 and fit["train_pairs"] == int(streamed.group(1))
    assert fit["steps_per_epoch"] == int(streamed.group(1)) // 2 // 8 and 0 < fit["val_mrr"] <= 1
    assert 0 < metrics["fine_tuned"]["mrr"] <= 1
    assert (tmp_path / "run" / "encoder.safetensors").is_file() and (tmp_path / "run" / "index.json").is_file()
    code, _, err = cli(*args, "--stream", "--out", tmp_path / "a")
    assert code == 2 and "--stream feeds Ray Train workers: give --workers N too" in err
    code, _, err = cli(*args, "--workers", "2", "--stream", "--gpus-per-worker", "0.5", "--cpus-per-worker", "0.5",
                       "--out", tmp_path / "b")
    assert code == 2 and "--gpus-per-worker 0.5: 2 workers need 1 GPUs; the Ray cluster has 0" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_a_tagger_trains_on_two_ray_train_workers(ray_cluster, tmp_path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path
    from transferline.tagging import TagConfig, tag_texts
    from transferline.tagging.ray_fit import fit_tagger_on_ray

    catalog = Catalog(tmp_path / "cat")
    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    tagger, spec, fit = fit_tagger_on_ray(catalog, "mie", TagConfig(epochs=1, batch_size=8), workers=2)
    assert fit["workers"] == 2 and fit["epochs_run"] == 1 and fit["train_texts"] == 194 and 0 <= fit["val_f1"] <= 1
    assert tagger.tag_names[0] == "O" and isinstance(tag_texts(tagger, spec, ["pump leaking"])[0], list)


@pytest.mark.ray
@pytest.mark.slow
def test_tagging_texts_stream_to_two_ray_train_workers(ray_cluster, tmp_path, cli):
    """`tag fit --workers 2 --stream`: the training texts stream from the catalog through Ray Data,
    each worker iterating its own shard; the run folder and its test scores as without streaming."""
    from transferline.sample_data import sample_path

    home = ["--catalog", tmp_path / "cat"]
    assert cli("ingest", "maintie", sample_path("maintie"), "--name", "mie", *home, "--quiet")[0] == 0
    args = ["tag", "fit", "--dataset", "mie", "--epochs", "2", "--batch-size", "8", "--max-length", "24", *home]
    code, out, err = cli(*args, "--workers", "2", "--stream", "--cpus-per-worker", "0.5", "--out", tmp_path / "run")
    assert code == 0, err
    assert "194 training texts (streamed through Ray Data), 22 validation, 24 test" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    fit = metrics["fit"]
    assert fit["workers"] == 2 and fit["epochs_run"] == 2 and fit["train_texts"] == 194
    assert fit["steps_per_epoch"] == 194 // 2 // 8  # each worker's shard: 97 texts
    assert 0 < metrics["test"]["f1"] <= 1 and metrics["test"]["spans"] > 40
    assert (tmp_path / "run" / "model.safetensors").is_file()
    code, _, err = cli(*args, "--stream", "--out", tmp_path / "a")
    assert code == 2 and "--stream feeds Ray Train workers: give --workers N too" in err
    code, _, err = cli(*args, "--workers", "2", "--stream", "--out", tmp_path / "b")
    assert code == 2 and "--stream: Ray Data needs CPU beside the training workers" in err
    code, _, err = cli(*args, "--workers", "2", "--gpus-per-worker", "1", "--out", tmp_path / "c")
    assert code == 2 and "--gpus-per-worker 1: 2 workers need 2 GPUs; the Ray cluster has 0" in err
    code, _, err = cli(*args, "--gpus-per-worker", "1", "--out", tmp_path / "d")
    assert code == 2 and "--gpus-per-worker is for Ray Train workers: give --workers N too" in err
    assert not any((tmp_path / name).exists() for name in "abcd")


def _ingest_sensors(cli, tmp_path):
    """The vendored three-sensor slice ingested from the CLI, a dataset per sensor; the catalog folder."""
    from transferline.sample_data import cwru_folder

    folder, catalog = cwru_folder(tmp_path / "cwru"), tmp_path / "catalog"
    for sensor in ("DE", "FE", "BA"):
        code, _, err = cli("ingest", "cwru", folder, "--sensor", sensor, "--name", f"cwru_{sensor.lower()}",
                           "--catalog", catalog, "--quiet")
        assert code == 0, err
    return catalog


@pytest.mark.ray
@pytest.mark.slow
def test_cross_modal_pretraining_on_two_ray_workers(ray_cluster, tmp_path, cli):
    """The three sensors aligned with each other (no labels), data-parallel over two workers."""
    catalog = _ingest_sensors(cli, tmp_path)
    _on_two_workers(cli, "pretrain", "fusion_cwru.yaml", tmp_path / "pre", f"catalog={catalog}",
                    "objective=cross_modal", "data.spec_options.length=512", "data.spec_options.stride=128",
                    "data.time_split=0.6", "data.val_fraction=0.4", "optim.batch_size=16", "epochs=2",
                    "--cpus-per-worker", "0.5", "--no-mlflow", metric="val_loss")
    assert json.loads((tmp_path / "pre" / "encoder.json").read_text())["objective"] == "cross_modal"


@pytest.mark.ray
def test_fused_sensors_on_two_ray_workers(ray_cluster, tmp_path, cli):
    """Three real accelerometers, each ingested as its own dataset from the CLI, joined per sample
    and fused, data-parallel over two Ray Train workers."""
    catalog = _ingest_sensors(cli, tmp_path)
    _on_two_workers(cli, "transfer", "fusion_cwru.yaml", tmp_path / "run", f"catalog={catalog}",
                    "data.spec_options.length=512", "data.spec_options.stride=128", "data.time_split=0.6",
                    "data.val_fraction=0.4", "optim.batch_size=16", "epochs=2", "encoder.options.fusion=attention",
                    "--cpus-per-worker", "0.5", "--no-mlflow", metric="test_accuracy")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert list(meta["input"]) == ["de", "fe", "ba"] and meta["adaptation"] == "mmd"


@pytest.mark.ray
@pytest.mark.parametrize("streamed", [False, True], ids=["loaded", "streamed"])
def test_signal_groups_and_set_points_on_two_ray_workers(ray_cluster, tmp_path, cli, streamed):
    """A real CNC milling slice ingested from the CLI: four signal groups of one dataset and the
    set-points as a tabular input, fused, data-parallel over two Ray Train workers. Streamed: every
    input is read, standardized and joined in Ray Data read tasks and sharded between the workers."""
    from transferline.sample_data import sample_path

    catalog = tmp_path / "catalog"
    code, _, err = cli("ingest", "cnc-mill", sample_path("cnc_mill"), "--name", "cnc", "--catalog", catalog, "--quiet")
    assert code == 0, err
    stream = ["data.streaming.enabled=true", "data.streaming.rows_per_task=2000"] if streamed else []
    _on_two_workers(cli, "transfer", "fusion_cnc.yaml", tmp_path / "run", f"catalog={catalog}", "epochs=2", *stream,
                    "--cpus-per-worker", "0.5", "--no-mlflow", metric="test_accuracy")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert list(meta["input"]) == ["spindle", "x", "y", "z", "setpoints"]
    assert meta["input"]["setpoints"]["modality"] == "tabular" and meta["input"]["x"]["normalizer"]["groups"] == [0, -1]


@pytest.mark.ray
@pytest.mark.parametrize("streamed", [False, True], ids=["loaded", "streamed"])
def test_images_windows_and_notes_joined_by_time_on_two_ray_workers(ray_cluster, tmp_path, cli, streamed):
    """Inspection images, the sensor windows their machines recorded up to them and the nearest
    maintenance notes (real data, times assigned: ``test_time_join.py``), joined by time and fused,
    data-parallel over two Ray Train workers. Streamed: each read task reads its images, the windows
    and notes of their machines, joins and standardizes them, and the workers share the blocks."""
    from .test_time_join import CONFIG, line_catalog_at, overrides

    catalog = line_catalog_at(tmp_path / "line")
    stream = ["data.source.domains=[line1]", "data.source.split=all", "data.streaming.enabled=true",
              "data.streaming.samples_per_task=8"] if streamed else []
    _on_two_workers(cli, "transfer", CONFIG, tmp_path / "run", *overrides(catalog), *stream, "--cpus-per-worker", "0.5",
                    metric="test_accuracy")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert list(meta["input"]) == ["photo", "drives", "note"] and meta["input"]["note"]["modality"] == "text"
    assert meta["input"]["drives"]["normalizer"]["groups"] == [0, -1]  # fitted over the training events' windows
