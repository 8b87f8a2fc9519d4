"""Request batching sized per model from what batching buys that model.

A loaded model is timed once on zeros of its input at batch 1 and at batch ``PROBE``. Batching
pays where one batched call costs much less than that many single calls (an accelerator, wide
convolutions); where a call is already cheap, or costs the same per sample batched or not (small
models, and depthwise image backbones on one CPU thread), queueing for a batch only adds latency
and work. So each model gets its own policy: it batches only where the measured gain reaches
``MIN_GAIN`` and batching saves at least ``MIN_SAVED_S`` per sample (the queue's own cost), then
up to ``MAX_BATCH`` samples, waiting at most about one single call's time for a batch to fill.
Each loaded model has its own queue: a batch never mixes models.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

PROBE = 8  # batch size timed against batch 1
MIN_GAIN = 1.3  # below this throughput gain at batch PROBE, requests run one by one
MIN_SAVED_S = 0.00025  # ... and below this saving per sample (batch-1 time - batch-PROBE time / PROBE)
MAX_BATCH = 32  # samples (windows, images, texts) per batched call
WAIT_S = (0.0005, 0.010)  # bounds of the wait for a batch to fill


@dataclass(frozen=True)
class BatchPolicy:
    batch: bool
    max_batch: int = 1
    wait_s: float = 0.0
    gain: float | None = None  # measured: PROBE x (batch-1 time) / (batch-PROBE time)
    single_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def measure(module, repeats: int = 3) -> BatchPolicy:
    """The policy for one loaded model (an :class:`OnnxModule`-like object with ``run`` and
    ``sample``); models whose input cannot be probed (TorchScript fallback) batch with defaults."""
    if getattr(module, "multi", False):  # several inputs, some absent per request: one call per request
        return BatchPolicy(False, 1, 0.0)
    sample = getattr(module, "sample", None)
    one, many = (sample(1), sample(PROBE)) if sample else (None, None)
    if one is None:
        return BatchPolicy(True, MAX_BATCH, 0.005)
    module.run(one)  # first call: allocations, kernel choice

    def best(x: np.ndarray) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            module.run(x)
            times.append(time.perf_counter() - t0)
        return min(times)

    t1, tn = best(one), best(many)
    gain = PROBE * t1 / max(tn, 1e-9)
    if gain < MIN_GAIN or t1 - tn / PROBE < MIN_SAVED_S:
        return BatchPolicy(False, 1, 0.0, round(gain, 3), round(t1 * 1000, 4))
    wait = min(max(t1, WAIT_S[0]), WAIT_S[1])
    return BatchPolicy(True, MAX_BATCH, round(wait, 5), round(gain, 3), round(t1 * 1000, 4))


def batched(model, policy: BatchPolicy, observe=lambda samples: None):
    """An async ``(x) -> y`` for one loaded model that batches concurrent calls per ``policy``
    (``x`` a prepared input ``[n, ...]``; a batch counts samples, not requests); inputs of more
    than ``policy.max_batch`` samples run on their own. ``observe(n)`` hears each call's samples."""
    from ray import serve

    @serve.batch(max_batch_size=policy.max_batch, batch_wait_timeout_s=policy.wait_s,
                 batch_size_fn=lambda xs: sum(len(x) for x in xs))
    async def queued(xs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.concatenate(xs)
        observe(len(x))
        y = model.run(x)
        bounds = np.cumsum([0] + [len(x) for x in xs])
        return [y[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]

    async def run(x: np.ndarray) -> np.ndarray:
        if len(x) <= policy.max_batch:
            return await queued(x)
        observe(len(x))
        return model.run(x)

    return run
