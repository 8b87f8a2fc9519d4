"""The one epoch loop every run uses: steps returning ``{"loss": ...}``, a schedule-aware
progress value, early stopping with best-state restore, and per-epoch reports."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class EarlyStopping:
    """Tracks the best value of a metric and the model state at that point; with ``keep_last``,
    every epoch counts as the best (the run goes to its last epoch and keeps those weights)."""

    def __init__(self, patience: int, higher_is_better: bool, min_delta: float = 0.0, keep_last: bool = False) -> None:
        self.patience, self.higher, self.min_delta, self.keep_last = patience, higher_is_better, min_delta, keep_last
        self.best = -math.inf if higher_is_better else math.inf
        self.best_epoch, self.bad_epochs, self.best_state = -1, 0, None
        self.history: list[dict] = []  # the per-epoch records :func:`run_epochs` reported

    def update(self, value: float, epoch: int, module: nn.Module) -> bool:
        better = value > self.best + self.min_delta if self.higher else value < self.best - self.min_delta
        if better or self.keep_last:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        else:
            self.bad_epochs += 1
        return better or self.keep_last

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs > self.patience

    def restore(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]


def cycle(make: Callable[[], Iterator]) -> Iterator:
    """Endless iteration over fresh iterators from ``make`` (reshuffled each pass)."""
    while True:
        yield from make()


def run_epochs(*, module: nn.Module, step: Callable[[float], dict], steps_per_epoch: int, epochs: int,
               optimizer: torch.optim.Optimizer, evaluate: Callable[[], dict], metric: str, higher_is_better: bool,
               patience: int, min_delta: float = 0.0, on_epoch_start: Callable[[int], None] | None = None,
               penalty: Callable[[], torch.Tensor | None] | None = None, report: Callable[[dict], None] | None = None,
               progress: bool = True, autocast: Callable | None = None, start_epoch: int = 0,
               stopper: EarlyStopping | None = None, scheduler=None,
               after_backward: Callable[[], None] | None = None, averaged: AveragedModel | None = None,
               on_epoch_end: Callable[[int, "EarlyStopping", dict], None] | None = None,
               time_limit: float | None = None) -> EarlyStopping:
    """Trains for up to ``epochs``; ``step(progress)`` draws its own batch and returns the loss dict.

    After each epoch ``evaluate()`` gives metrics; ``metric`` among them drives early stopping.
    The best state is restored into ``module`` before returning. ``scheduler`` steps once per batch.
    ``after_backward`` runs between backward and the optimizer step (e.g. averaging gradients
    across data-parallel workers). ``on_epoch_end(epoch, stopper, record)`` runs after each epoch's
    report (e.g. to checkpoint); with ``start_epoch`` and a restored ``stopper`` a run resumes.
    With ``averaged`` (a moving average of ``module``'s weights, updated after every step), each
    epoch is evaluated, and the best state kept, with the averaged weights; training goes on from
    the live ones. With ``time_limit`` (seconds), no epoch starts once that much time has passed.
    """
    from tqdm.auto import tqdm

    stopper = stopper or EarlyStopping(patience, higher_is_better, min_delta)
    total = max(1, epochs * steps_per_epoch)
    started = time.perf_counter()
    for epoch in range(start_epoch if not stopper.should_stop else epochs, epochs):
        module.train()
        if on_epoch_start:
            on_epoch_start(epoch)
        t0, sums = time.perf_counter(), {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress)
        for i in bar:
            with autocast() if autocast else _null():
                out = step((epoch * steps_per_epoch + i) / total)
                loss = out["loss"]
                extra = penalty() if penalty else None
                if extra is not None:
                    loss = loss + extra
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward is not None:
                after_backward()
            optimizer.step()
            if averaged is not None:
                averaged.update_parameters(module)
            if scheduler is not None:
                scheduler.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        module.eval()
        live = None
        if averaged is not None:
            live = {k: v.detach().clone() for k, v in module.state_dict().items()}
            module.load_state_dict(averaged.module.state_dict())
        with torch.no_grad():
            metrics = evaluate()
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0,
                  **{f"train_{k}": v / steps_per_epoch for k, v in sums.items()}, **metrics}
        improved = stopper.update(metrics[metric], epoch, module)
        if live is not None:
            module.load_state_dict(live)
        record["best"] = improved
        stopper.history.append(record)
        if report:
            report(record)
        if on_epoch_end:
            on_epoch_end(epoch, stopper, record)
        if stopper.should_stop or (time_limit is not None and time.perf_counter() - started >= time_limit):
            break
    stopper.restore(module)
    return stopper


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
