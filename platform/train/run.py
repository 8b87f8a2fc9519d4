"""``train_loop(config)``: pretraining or transfer, end to end, from a validated config.

Writes to the run directory: ``config.yaml``, ``history.jsonl`` (one record per epoch),
``metrics.json`` (final), and weights (``encoder`` / ``model`` as safetensors + JSON).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from transferline.tasks import create_task

from ..adaptation import DomainBatch, create_adaptation
from ..data import Windows, WindowStream
from ..data.stream import RayStream
from ..data.joined_stream import JoinedStream
from ..data.multimodal import JoinedSamples
from ..encoders import create_encoder, encoder_name
from ..losses import mk_mmd
from ..objectives import create_objective
from .checkpoint import fresh_run_dir, load_state, save_module, write_json
from ._dist import Dist
from .data import RunData, prepare_data
from .loop import EarlyStopping, cycle, run_epochs
from .strategies import create_strategy
from .tracking import MlflowRun


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_loop(config: dict, data: RunData | None = None, report: Callable[[dict], None] | None = None,
               dist: Dist | None = None, device: torch.device | None = None, checkpointer=None,
               ray_worker: bool = False) -> dict:
    """Runs ``config`` (see :mod:`transferline.train.config`); returns the final metrics.

    With ``dist`` (set by :func:`transferline.train.fit_on_ray` in each Ray Train worker) every
    worker draws its own batches, gradients are averaged across workers, and only rank 0 writes the
    run directory; all workers return the same metrics. A ``checkpointer`` (``save(state, record)``
    after every epoch, ``load()`` at the start) makes the run resumable. A run with a run directory is
    tracked in MLflow (:mod:`transferline.train.tracking`; through Ray's ``setup_mlflow`` when
    ``ray_worker``) unless ``tracking.mlflow`` is false.
    """
    dist = dist or Dist()
    seed_everything(config["seed"])
    device = device or pick_device(config["device"])
    data = data or prepare_data(config)
    run_dir = fresh_run_dir(config["run_dir"], run_inputs(config)) if config.get("run_dir") and dist.is_main else None
    history = []

    def on_report(record: dict) -> None:
        history.append(record)
        if run_dir:
            with open(run_dir / "history.jsonl", "a") as fh:
                fh.write(json.dumps(record, default=float) + "\n")
        if tracked:
            tracked.epoch(record)
        if report:
            report(record)

    if run_dir:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    tracked = MlflowRun.start(config, run_dir, ray_worker=ray_worker) if run_dir else None
    t0 = time.perf_counter()
    runner = _pretrain if config["mode"] == "pretrain" else _transfer
    try:
        metrics = runner(config, data, device, on_report, run_dir, dist, checkpointer)
    except BaseException as exc:
        if tracked:
            tracked.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    metrics["wall_seconds"] = time.perf_counter() - t0
    metrics["epochs_run"] = len(history)
    if run_dir:
        write_json(run_dir / "metrics.json", metrics)
    if tracked:
        tracked.finish(metrics, run_dir)
    return metrics


def run_inputs(config: dict) -> list[str | None]:
    """What a run reads from disk, which its run directory must not hold."""
    from ..catalog.store import resolve_root

    return [config.get("pretrained"), str(resolve_root(config.get("catalog")))]


def build_encoder(config: dict, data: RunData, device) -> nn.Module:
    """The config's encoder for ``data``'s input, with the ``pretrained`` run's weights when it names one."""
    enc_cfg = config["encoder"]
    encoder = create_encoder(enc_cfg["name"], data.input_spec(), **(enc_cfg.get("options") or {}))
    if config.get("pretrained"):
        state, meta = load_state(Path(config["pretrained"]), "encoder")
        saved = meta.get("encoder")
        try:
            same = encoder_name(saved) == encoder.name
        except ValueError:
            same = False
        if not same:
            raise ValueError(f"pretrained encoder is {saved!r}, config asks for {enc_cfg['name']!r}")
        try:
            encoder.load_state_dict(state)
        except RuntimeError as exc:  # other shapes: another window, channel count or encoder options
            raise ValueError(f"pretrained={config['pretrained']}: its weights do not fit this encoder "
                             f"({str(exc).splitlines()[0][:160]})") from None
    return encoder.to(device)


def _autocast(config: dict, device: torch.device):
    if config["precision"] == "bf16" and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return None


def _batches(windows: Windows | WindowStream, batch_size: int, seed: int, device, rank: int = 0) -> Callable:
    """Endless shuffled batches; each data-parallel worker (``rank``) draws its own order."""
    epoch = [0]

    def make():
        epoch[0] += 1
        for batch in windows.batches(min(batch_size, len(windows)), shuffle=True,
                                     seed=seed * 1000 + epoch[0] + 1_000_003 * rank,
                                     drop_last=len(windows) > batch_size):
            yield batch.to(device)
    return make


def _scheduler(config: dict, opt: torch.optim.Optimizer, steps_per_epoch: int):
    """Cosine decay to zero over the whole run (per step), or none."""
    if config["optim"]["schedule"] != "cosine":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps_per_epoch * config["optim"]["epochs"]))


def _steps_per_epoch(config: dict, n: int) -> int:
    steps = max(1, n // config["optim"]["batch_size"])
    cap = config["optim"].get("max_steps_per_epoch")
    return min(steps, cap) if cap else steps


@torch.no_grad()
def evaluate_set(model: Callable, task, samples: Windows | WindowStream, device, batch_size: int = 1024,
                 outputs: list | None = None) -> dict:
    """``task``'s metrics of ``model`` over every sample, accumulated batch by batch; the model's
    outputs are appended to ``outputs`` where given (on the CPU, in order)."""
    evaluator = task.evaluator()
    for batch in samples.batches(batch_size):
        out = model(batch.to(device).inputs)
        evaluator.update(out, batch.target)
        if outputs is not None and torch.is_tensor(out):
            outputs.append(out.float().cpu())
    return evaluator.compute()


@torch.no_grad()
def predict(model: Callable, samples: Windows | WindowStream, device, batch_size: int = 1024) -> torch.Tensor:
    """``model``'s outputs on every sample, in order."""
    return torch.cat([model(batch.to(device).inputs).float().cpu() for batch in samples.batches(batch_size)])


def _resumable(checkpointer, module: nn.Module, opt, scheduler, patience: int, higher: bool, ema: float = 0.0,
               keep_last: bool = False):
    """(start epoch, early-stopping state, epoch-end hook, weight average or None) — restored from
    ``checkpointer`` if it has a state. ``ema`` is the decay of the weights' moving average (0: none).

    # NOTE: the batch streams start afresh on resume, so a resumed run sees other batches than an
    # uninterrupted one; its metrics agree within seed noise, not to the digit.
    """
    stopper = EarlyStopping(patience, higher, keep_last=keep_last)
    averaged = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True) if ema else None
    start = 0
    state = checkpointer.load() if checkpointer else None
    if state:
        module.load_state_dict(state["module"])
        if averaged is not None and state.get("averaged"):
            averaged.load_state_dict(state["averaged"])
        opt.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["stopper"])
        stopper.best_state = state.get("best_state")
        start = int(state["epoch"]) + 1

    def on_epoch_end(epoch: int, stop: EarlyStopping, record: dict) -> None:
        if checkpointer:
            checkpointer.save({"epoch": epoch, "module": module.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": scheduler.state_dict() if scheduler is not None else None,
                               "stopper": stop.state_dict(), "best_state": stop.best_state,
                               "averaged": averaged.state_dict() if averaged is not None else None}, record)

    return start, stopper, on_epoch_end, averaged


def _pretrain(config, data: RunData, device, report, run_dir, dist: Dist, checkpointer=None) -> dict:
    task = create_task(config["task"]["name"], **(config["task"].get("options") or {}))
    task.bind(data.classes, multi_label=data.multi_label)
    encoder = build_encoder(config, data, device)
    objective = create_objective(config["objective"]["name"], encoder, data.input_spec(), task=task,
                                 **(config["objective"].get("options") or {})).to(device)
    dist.broadcast(objective)
    optim = config["optim"]
    opt = torch.optim.AdamW(objective.parameters(), lr=optim["lr"], weight_decay=optim["weight_decay"])
    train_iter = cycle(_batches(data.source_train, optim["batch_size"], config["seed"], device, dist.rank))

    @dist.same_on_all
    def evaluate() -> dict:
        # NOTE: the same masks / augmentations every epoch, without resetting the training stream
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config["seed"])
            losses = [float(objective.step(b.to(device))["loss"]) for b in data.source_val.batches(optim["batch_size"])]
        return {"val_loss": float(np.mean(losses))}

    n_steps = _steps_per_epoch(config, len(data.source_train))
    scheduler = _scheduler(config, opt, n_steps)
    start, stopper, on_epoch_end, averaged = _resumable(checkpointer, objective, opt, scheduler,
                                                        config["early_stopping"]["patience"], False, optim["ema"])
    stopper = run_epochs(module=objective, step=lambda p: objective.step(next(train_iter), p),
                         steps_per_epoch=n_steps, epochs=optim["epochs"], scheduler=scheduler,
                         start_epoch=start, stopper=stopper, on_epoch_end=on_epoch_end,
                         optimizer=opt, evaluate=evaluate, metric="val_loss", higher_is_better=False,
                         patience=config["early_stopping"]["patience"], report=report, progress=config["progress"],
                         autocast=_autocast(config, device), after_backward=lambda: dist.average_gradients(objective),
                         averaged=averaged)
    metrics = {"val_loss": stopper.best, "best_epoch": stopper.best_epoch + 1, "resumed_at_epoch": start,
               "steps_per_epoch": n_steps}
    if run_dir:
        save_module(run_dir, "encoder", encoder, {"encoder": encoder.name,
                                                  "options": config["encoder"].get("options") or {},
                                                  "input": data.input_spec().to_dict(),
                                                  "objective": config["objective"]["name"],
                                                  "normalizers": {k: v.to_dict() for k, v in data.normalizers.items()}})
    return metrics


def _transfer(config, data: RunData, device, report, run_dir, dist: Dist, checkpointer=None) -> dict:
    task = create_task(config["task"]["name"], **(config["task"].get("options") or {}))
    task.bind(data.classes, multi_label=data.multi_label)
    encoder = build_encoder(config, data, device)
    head = task.build_head(encoder.out_dim).to(device)
    method = create_adaptation(config["adaptation"]["name"], encoder, head, task,
                               **(config["adaptation"].get("options") or {})).to(device)
    dist.broadcast(method)
    strategy = create_strategy(config["strategy"]["name"], **(config["strategy"].get("options") or {}))
    optim = config["optim"]
    rest = [p for name, p in method.named_parameters() if not name.startswith("encoder.")]
    opt = torch.optim.AdamW(strategy.param_groups(encoder, rest, optim["lr"]), lr=optim["lr"],
                            weight_decay=optim["weight_decay"])
    bs, seed = optim["batch_size"], config["seed"]
    src = cycle(_batches(data.source_train, bs, seed, device, dist.rank))
    use_target = data.target_train is not None and method.supports_unlabeled_target
    tgt = cycle(_batches(data.target_train, bs, seed + 1, device, dist.rank)) if use_target else None
    lab = cycle(_batches(data.target_labelled, bs, seed + 2, device, dist.rank)) \
        if data.target_labelled is not None else None

    def step(progress: float) -> dict:
        return method.step(DomainBatch(next(src), next(tgt) if tgt else None, next(lab) if lab else None), progress)

    metric = config["early_stopping"]["metric"]
    dev_sets = None
    if metric == "dev":
        if data.target_train is None:
            raise ValueError("early_stopping.metric=dev needs unlabelled target windows (target.domains)")
        rng = np.random.default_rng(config["seed"])
        dev_sets = (data.source_val.draw(1024, rng), data.target_train.draw(1024, rng))

    def scores(prefix: str, windows: Windows | WindowStream, outputs: list | None = None) -> dict:
        return {f"{prefix}_{k}": v for k, v in evaluate_set(method, task, windows, device, outputs=outputs).items()}

    @dist.same_on_all
    def evaluate() -> dict:
        out = scores("source_val", data.source_val)
        if data.target_val is not None:
            out.update(scores("target_val", data.target_val))
        if dev_sets is not None:
            out["source_val_dev_risk"] = _dev(method, encoder, task, *dev_sets, device)
        if config["data"]["test"]["monitor"] and data.test is not None:  # learning curves only, never selection
            out.update(scores("monitor_test", data.test))
        return out

    probe = _feature_probe(data, config["seed"]) if run_dir else None
    before = _probe_features(encoder, probe, device) if probe else None

    higher = task.higher_is_better
    if metric == "dev":
        metric, higher = "source_val_dev_risk", False
    elif metric in ("auto", "source_val"):
        metric = f"source_val_{task.primary_metric}"
    elif metric == "target_val":
        metric = f"target_val_{task.primary_metric}" if data.target_val is not None else \
            f"source_val_{task.primary_metric}"
    keep_last = metric == "last"
    if keep_last:  # no selection: the final epoch's weights (what few-shot runs without held-out samples want)
        metric = f"source_val_{task.primary_metric}"
    n_steps = _steps_per_epoch(config, len(data.source_train))
    scheduler = _scheduler(config, opt, n_steps)
    start, stopper, on_epoch_end, averaged = _resumable(checkpointer, method, opt, scheduler,
                                                        config["early_stopping"]["patience"], higher, optim["ema"],
                                                        keep_last)
    fit = {}
    if strategy.probe is not None and start == 0:  # a resumed run's head is in its checkpoint
        if config["adaptation"]["name"] != "source_only":
            raise ValueError(f"strategy={config['strategy']['name']} fits the head on labelled features alone "
                             f"first; adaptation={config['adaptation']['name']} trains it with its own loss "
                             "(use strategy=linear_probe with solver=sgd, or another strategy)")
        fit = _fit_probe(strategy.probe, encoder, head, task, data.source_train, device, dist)
    if not strategy.trains:
        method.eval()
        with torch.no_grad():
            record = {"epoch": 1, **fit, **evaluate()}
        stopper = EarlyStopping(0, higher)
        record["best"] = stopper.update(record[metric], 0, method)
        stopper.history.append(record)
        report(record)
    else:
        stopper = run_epochs(module=method, step=step, steps_per_epoch=n_steps, epochs=optim["epochs"],
                             optimizer=opt, scheduler=scheduler, start_epoch=start, stopper=stopper,
                             on_epoch_end=on_epoch_end, evaluate=evaluate, metric=metric, higher_is_better=higher,
                             patience=config["early_stopping"]["patience"],
                             on_epoch_start=lambda e: strategy.on_epoch_start(e, encoder),
                             penalty=lambda: strategy.penalty(encoder), report=report, progress=config["progress"],
                             autocast=_autocast(config, device),
                             after_backward=lambda: dist.average_gradients(method), averaged=averaged)
    method.eval()
    metrics = {"selection_metric": "last epoch" if keep_last else metric, "selection_value": stopper.best,
               "best_epoch": stopper.best_epoch + 1, "resumed_at_epoch": start, "steps_per_epoch": n_steps,
               "train_samples": len(data.source_train),
               "target_labelled_samples": len(data.target_labelled) if data.target_labelled is not None else 0,
               **fit}
    test_outputs = [] if run_dir else None  # kept for evaluation.npz
    if data.test is not None:
        metrics.update(scores("test", data.test, test_outputs))
        if isinstance(data.test, JoinedSamples):  # each input down in turn (a sensor failed, a camera off)
            for name in data.test.names:
                metrics.update(scores(f"test_without_{name}", data.test.without(name)))
        metrics["feature_mmd"] = feature_mmd(encoder, data.source_val, data.target_train or data.test, device)
    if run_dir:
        _write_evaluation(run_dir, encoder, task, data, probe, before, test_outputs, device)
        save_module(run_dir, "model", method, {"encoder": encoder.name,
                                               "options": config["encoder"].get("options") or {},
                                               "task": task.config(), "adaptation": config["adaptation"]["name"],
                                               "input": data.input_spec().to_dict(),
                                               "output": task.output(data.classes),
                                               "normalizers": {k: v.to_dict() for k, v in data.normalizers.items()}})
    return metrics


def _fit_probe(probe, encoder: nn.Module, head: nn.Module, task, samples, device, dist: Dist) -> dict:
    """Fits ``head`` by ``probe.fit_head`` on the frozen encoder's features of every training
    sample (encoder in eval mode); returns the fit's record (objective, iterations, seconds). A
    streamed set is each Ray Train worker's shard: the workers' features are gathered, so that
    every worker fits on all of them; rank 0's head is then every worker's."""
    t0 = time.perf_counter()
    mode = encoder.training
    encoder.eval()
    features, targets = [], []
    with torch.no_grad():
        for batch in samples.batches(256):
            batch = batch.to(device)
            features.append(encoder(batch.inputs).float())
            targets.append(batch.target)
    features, targets = torch.cat(features), torch.cat(targets)
    if isinstance(samples, RayStream):
        features, targets = dist.gather(features), dist.gather(targets)
    fit = probe.fit_head(head, task, features, targets)
    dist.broadcast(head)
    encoder.train(mode)
    return {**fit, "probe_samples": len(features), "probe_seconds": time.perf_counter() - t0}


def _feature_probe(data: RunData, seed: int) -> dict | None:
    """Fixed source-validation and target samples whose features the run saves before and after
    training (for the report's projection of source and target features): 256 windows each, 64
    images or texts."""
    target = data.target_train if data.target_train is not None else data.test
    if target is None or not all(hasattr(s, "sample") for s in (data.source_val, target)):
        return None
    n = 256 if isinstance(data.source_val, (Windows, WindowStream, JoinedSamples, JoinedStream)) else 64
    rng = np.random.default_rng(seed)
    return {"source": data.source_val.sample(n, rng), "target": target.sample(n, rng)}


@torch.no_grad()
def _probe_features(encoder: nn.Module, probe: dict, device) -> dict[str, np.ndarray]:
    """The encoder's features of the probe samples, in eval mode (training state untouched)."""
    mode = encoder.training
    encoder.eval()
    try:
        return {k: _embed(encoder, x, device).numpy() for k, x in probe.items()}
    finally:
        encoder.train(mode)


def _write_evaluation(run_dir: Path, encoder, task, data: RunData, probe, before, test_outputs: list | None,
                      device) -> None:
    """``evaluation.npz``: the probe's features before and after training (``source_before``, ...)
    and, for a test set of classes or values, its targets and the model's predictions (from the
    outputs of the test's scoring pass)."""
    import io
    import os

    arrays = {}
    if probe:
        after = _probe_features(encoder, probe, device)
        arrays.update({f"{k}_before": v for k, v in before.items()})
        arrays.update({f"{k}_after": v for k, v in after.items()})
    test = data.test
    labels = getattr(test, "labels", None)
    if test_outputs and isinstance(labels, np.ndarray) and not data.multi_label:
        # in the task's units: class ids, or values in label units (a RUL head predicts RUL / scale)
        predicted = task.predict(torch.cat(test_outputs)).numpy()
        arrays["test_target"] = task.targets(torch.from_numpy(labels)).numpy()
        arrays["test_predicted"] = predicted if task.task_type == "classification" else \
            predicted.reshape(len(predicted), -1)
    if not arrays:
        return
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    tmp = run_dir / ".evaluation.npz.tmp"
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, run_dir / "evaluation.npz")


def _embed(encoder: nn.Module, x, device) -> torch.Tensor:
    """Features of one model input (an array, or a dict of arrays for several inputs), on the CPU."""
    x = {k: torch.from_numpy(v).to(device) for k, v in x.items()} if isinstance(x, dict) else \
        torch.from_numpy(x).to(device)
    return encoder(x).float().cpu()


@torch.no_grad()
def _dev(model, encoder, task, source_val: Windows, target: Windows, device) -> float:
    """Deep Embedded Validation risk of ``model``: importance-weighted source-validation loss."""
    from ..adaptation import density_ratio, dev_risk

    losses = task.sample_losses(predict(model, source_val, device), torch.from_numpy(source_val.labels))
    weights = density_ratio(predict(encoder, source_val, device), predict(encoder, target, device))
    return dev_risk(losses.double(), weights.double())


@torch.no_grad()
def feature_mmd(encoder: nn.Module, source: Windows | WindowStream, target: Windows, device, n: int = 512,
                seed: int = 0) -> float:
    """MK-MMD between encoder features of up to ``n`` source and ``n`` target windows (fixed sample)."""
    rng = np.random.default_rng(seed)
    encoder.eval()
    return float(mk_mmd(_embed(encoder, source.sample(n, rng), device), _embed(encoder, target.sample(n, rng), device)))
