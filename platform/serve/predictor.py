"""Plain-Python prediction over registered models: validation, normalization, an LRU of loaded
TorchScript artifacts. Ray Serve wraps this; tests and ``transferline predict`` use it directly.

Only torch, numpy and the registry's JSON are needed here: no tsai, no fastai, no training code.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import TransferlineError
from ..model_registry import ModelEntry, ModelRegistry, load_exported


class RequestError(TransferlineError):
    """A request that does not fit the model: ``loc`` is the path to the bad field (FastAPI style)."""

    def __init__(self, loc: list, message: str) -> None:
        self.loc, self.message = loc, message
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")


@dataclass
class LoadedModel:
    entry: ModelEntry
    module: object  # torch.jit.ScriptModule
    mean: np.ndarray | None  # [G, C]
    std: np.ndarray | None
    groups: np.ndarray | None  # known group ids (the last row of mean/std is the global fallback)

    @property
    def ref(self) -> str:
        return self.entry.ref

    def prepare(self, windows: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        """Raw windows ``[B, T, C]`` → normalized model input ``[B, C, T]`` (float32)."""
        spec = self.entry.input
        x = windows.astype(np.float64)
        if spec["normalize"] == "window":
            x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
        elif self.mean is not None:
            if groups is None:
                rows = np.full(x.shape[:2], len(self.mean) - 1)
            else:
                pos = np.minimum(np.searchsorted(self.groups, groups), max(len(self.groups) - 1, 0))
                rows = np.where(self.groups[pos] == groups, pos, len(self.mean) - 1) if len(self.groups) else \
                    np.zeros_like(groups)
            x = (x - self.mean[rows]) / self.std[rows]
        return np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(x)).numpy()


def validate(entry: ModelEntry, windows, signals: list[str] | None, groups) -> tuple[np.ndarray, np.ndarray | None]:
    """Checks a request against the model's input spec; returns windows ``[B, T, C]`` and groups."""
    spec = entry.input
    if signals is not None and list(signals) != list(spec["signals"]):
        raise RequestError(["body", "signals"], f"model {entry.ref} takes signals {spec['signals']} in this order")
    try:
        x = np.asarray(windows, dtype=np.float64)
    except (ValueError, TypeError):
        raise RequestError(["body", "windows"], "ragged or non-numeric: expected [batch][time][signal] numbers") from None
    expected = (spec["window"], spec["channels"])
    if x.ndim != 3 or x.shape[1:] != expected or x.shape[0] == 0:
        raise RequestError(["body", "windows"], f"shape {list(x.shape)}; model {entry.ref} takes "
                                                f"[batch >= 1, {expected[0]} time steps, {expected[1]} signals]")
    bad = ~np.isfinite(x)
    if bad.any():
        b, t, c = (int(i) for i in np.argwhere(bad)[0])
        raise RequestError(["body", "windows", b, t, c], f"not a finite number (signal {spec['signals'][c]!r})")
    g = None
    if groups is not None:
        try:
            g = np.asarray(groups, dtype=np.int64)
        except (ValueError, TypeError):
            raise RequestError(["body", "groups"], "expected [batch][time] integers") from None
        if g.shape != x.shape[:2]:
            raise RequestError(["body", "groups"], f"shape {list(g.shape)}, windows need {list(x.shape[:2])}")
    elif spec.get("group_by") and spec.get("normalizer") and len(spec["normalizer"]["groups"]) > 2:
        raise RequestError(["body", "groups"], f"model {entry.ref} normalizes per {spec['group_by']}: send the "
                                               "group of every time step (e.g. round(setting_1) for C-MAPSS)")
    return x, g


class Predictor:
    """Answers predictions for any registered model, keeping up to ``max_models`` loaded (LRU)."""

    def __init__(self, registry: ModelRegistry | str | None = None, max_models: int = 16) -> None:
        self.registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)
        self.max_models = max_models
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()

    def entry(self, name: str, version: str | int | None = None, stage: str | None = None) -> ModelEntry:
        ref = f"{name}@{version}" if version is not None else name
        return self.registry.get(ref, stage)

    def load(self, ref: str | ModelEntry) -> LoadedModel:
        """The loaded model for ``name@version`` or an entry (loads it, evicting the least recently used).

        Kept per registration (:attr:`ModelEntry.key`), so a re-registered version number is loaded anew.
        """
        entry = ref if isinstance(ref, ModelEntry) else self.registry.get(ref)
        if entry.key in self._loaded:
            self._loaded.move_to_end(entry.key)
            return self._loaded[entry.key]
        model = load_model(self.registry, entry)
        self._loaded[entry.key] = model
        while len(self._loaded) > self.max_models:
            self._loaded.popitem(last=False)
        return model

    def predict(self, name: str, windows, *, signals=None, groups=None, version=None, stage=None) -> dict:
        entry = self.entry(name, version, stage)
        x, g = validate(entry, windows, signals, groups)
        model = self.load(entry)
        return response(entry, model.run(model.prepare(x, g)))


def load_model(registry: ModelRegistry, ref: str | ModelEntry) -> LoadedModel:
    """Loads one registered model's exported artifact and normalization statistics (no caching)."""
    entry = ref if isinstance(ref, ModelEntry) else registry.get(ref)
    norm = entry.input.get("normalizer")
    return LoadedModel(entry, load_exported(registry.artifact(entry.ref)),
                       np.asarray(norm["mean"]) if norm else None, np.asarray(norm["std"]) if norm else None,
                       np.asarray(norm["groups"][:-1], np.int64) if norm else None)


def response(entry: ModelEntry, out: np.ndarray) -> dict:
    out = out.tolist()
    if entry.output.get("kind") == "class" and entry.output.get("classes"):
        classes = entry.output["classes"]
        return {"model": entry.ref, "predictions": out, "labels": [classes[int(i)] for i in out]}
    return {"model": entry.ref, "predictions": out, "unit": entry.output.get("unit")}
