"""A multimodal view: several inputs of one sample, joined from catalog datasets by a shared key.

Each input is a sample set of its own, read from its own dataset by its own spec (one sensor's
windows, a camera's images, ...). :func:`join_samples` joins them by sample key: for series
windows the recording (plant and asset) and the window's position in it, so the drive-end and
fan-end windows of one recording at one moment are one sample. A sample that some input lacks
(a sensor not fitted on that machine, a recording without it) keeps the others and is marked
absent for that input; its tensor there is zeros and the presence mask, which every batch carries
as input ``present`` (``[B, M]`` bool, inputs in order), is what tells a model so.

A tabular input (:class:`RowValues`: named columns of a ``runs`` dataset, e.g. a process's
set-points) is read at the last row of each window and joins by the same key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ..errors import DataError
from .inputs import PRESENT
from .preprocess import standardize_rows
from .windows import Windows

__all__ = ["PRESENT", "JoinedSamples", "RowValues", "join_samples", "sample_keys"]


@dataclass
class RowValues(Windows):
    """A tabular input cut like series windows: each sample is its window's last row of the
    ``channels`` columns, ``[C]``, standardized by ``mean``/``std`` where they are set (fitted on
    training rows, :meth:`statistics`)."""

    mean: np.ndarray | None = None  # float64 [C]
    std: np.ndarray | None = None

    @classmethod
    def from_windows(cls, windows: Windows) -> "RowValues":
        """The rows at the ends of ``windows`` (cut over the tabular columns as channels)."""
        return cls(**{f.name: getattr(windows, f.name) for f in fields(Windows)})

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.n_channels,)

    def _raw(self, index) -> np.ndarray:
        """``[B, C]``: the raw values of the samples at ``index``."""
        return self.values[:, self.ends[index] - 1].T

    def get(self, index) -> np.ndarray:
        """The rows at ``index`` as float32 ``[B, C]``, preprocessed as serving does."""
        return standardize_rows(self._raw(index), self.mean, self.std)

    def statistics(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """``{"mean", "std"}`` per column over the samples at ``index`` (to standardize with)."""
        x = self._raw(index).astype(np.float64)
        return {"mean": x.mean(axis=0), "std": np.maximum(x.std(axis=0), 1e-6)}


def sample_keys(samples) -> list[tuple]:
    """Each sample's join key: ``(plant/asset, position of the window's end in its recording)``."""
    if not isinstance(samples, Windows):
        raise ValueError(f"joining {type(samples).__name__} by sample key is not supported yet; inputs joined "
                         "by key are series windows (recording and position)")
    names = np.asarray(samples.asset_names, dtype=object)[samples.assets]
    return list(zip(names.tolist(), (samples.ends - samples.asset_starts).tolist()))


@dataclass
class JoinedSamples:
    """Samples with several inputs: ``parts[name]`` holds input ``name``'s samples and
    ``rows[:, m]`` the row of each joined sample in input ``m`` (-1: absent)."""

    parts: dict
    rows: np.ndarray  # int64 [N, M]
    labels: np.ndarray
    domains: np.ndarray
    assets: np.ndarray
    domain_names: list[str]
    asset_names: list[str]
    classes: list[str]
    task_type: str
    ends: np.ndarray  # int64 [N]: where each sample's window ends in its recording (the join key's position)
    length: int  # the longest input window (a time split drops samples whose windows straddle it)

    @property
    def asset_starts(self) -> np.ndarray:
        """Zeros: positions count from each recording's start (as :class:`Windows`' do from its asset's)."""
        return np.zeros(len(self.rows), np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> list[str]:
        return list(self.parts)

    @property
    def present(self) -> np.ndarray:
        """``[N, M]`` bool: which inputs each sample has."""
        return self.rows >= 0

    def get(self, index) -> dict[str, np.ndarray]:
        """The inputs of the samples at ``index``: one array per input (zeros where absent) and
        ``present``."""
        rows = self.rows[index]
        out = {}
        for m, (name, part) in enumerate(self.parts.items()):
            have = rows[:, m] >= 0
            x = np.zeros((len(rows), *part.sample_shape), np.float32)  # windows [C, L], rows [C]
            if have.any():
                x[have] = part.get(rows[have, m])
            out[name] = x
        out[PRESENT] = rows >= 0
        return out

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        """One pass as :class:`~transferline.data.batch.Batch` es with every input and ``present``."""
        import torch

        from .batch import Batch

        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        for lo in range(0, stop, batch_size):
            idx = order[lo:lo + batch_size]
            inputs = {k: torch.from_numpy(v) for k, v in self.get(idx).items()}
            yield Batch(inputs, torch.from_numpy(self.labels[idx]), torch.from_numpy(self.domains[idx]),
                        present=inputs[PRESENT])

    def subset(self, mask) -> "JoinedSamples":
        return replace(self, rows=self.rows[mask], labels=self.labels[mask], domains=self.domains[mask],
                       assets=self.assets[mask], ends=self.ends[mask])

    def draw(self, n: int, rng: np.random.Generator) -> "JoinedSamples":
        return self.subset(np.sort(rng.choice(len(self), min(n, len(self)), replace=False)))

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        drawn = self.draw(n, rng)
        return drawn.get(np.arange(len(drawn)))

    def with_parts(self, parts: dict) -> "JoinedSamples":
        """The same samples reading from ``parts`` (e.g. each input normalized)."""
        if list(parts) != self.names:
            raise ValueError(f"parts {list(parts)} do not match the inputs {self.names}")
        return replace(self, parts=dict(parts))

    def input_rows(self, name: str) -> np.ndarray:
        """The rows of input ``name`` that these samples read (absent ones left out)."""
        rows = self.rows[:, self.names.index(name)]
        return rows[rows >= 0]

    def without(self, names: str | list[str]) -> "JoinedSamples":
        """The same samples with inputs ``names`` marked absent everywhere (a sensor down at test time)."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = sorted(set(names) - set(self.parts))
        if unknown:
            raise ValueError(f"no input(s) {unknown}; the samples have {self.names}")
        rows = self.rows.copy()
        rows[:, [self.names.index(n) for n in names]] = -1
        return replace(self, rows=rows)


def join_samples(parts: dict, *, how: str = "outer") -> JoinedSamples:
    """Joins the inputs ``parts`` (name → sample set) by :func:`sample_keys`.

    ``how="outer"`` keeps every sample any input has (the others marked absent); ``"inner"`` only
    the samples every input has. Tabular inputs (:class:`RowValues`) attach to the series inputs'
    samples and make none of their own. Inputs must agree on a shared sample's label and domain: a
    disagreement is a :class:`~transferline.errors.DataError` naming both inputs, the asset and the
    position. Samples are ordered by asset, then position.
    """
    if not parts:
        raise ValueError("join_samples needs at least one input")
    if how not in ("outer", "inner"):
        raise ValueError(f"how: 'outer' or 'inner', not {how!r}")
    names = list(parts)
    first = parts[names[0]]
    for name in names[1:]:
        part = parts[name]
        if part.task_type != first.task_type or list(part.classes) != list(first.classes):
            raise ValueError(f"inputs {names[0]!r} and {name!r} label samples differently "
                             f"({first.task_type} {list(first.classes)} vs {part.task_type} {list(part.classes)})")
    keyed = {name: {k: i for i, k in enumerate(sample_keys(part))} for name, part in parts.items()}
    # tabular rows attach to the series windows' samples; they make none of their own
    series = [k for name, k in keyed.items() if not isinstance(parts[name], RowValues)] or list(keyed.values())
    keys = set().union(*series) if how == "outer" else set.intersection(*(set(k) for k in keyed.values()))
    keys = sorted(keys)
    for name, index in keyed.items():
        if isinstance(parts[name], RowValues) and index and keys and not any(k in index for k in keys):
            raise DataError(f"tabular input {name!r} has no row where a window of the series inputs ends (does it "
                            "read the same recordings?)", key=name)
    rows = np.full((len(keys), len(names)), -1, np.int64)
    for m, name in enumerate(names):
        index = keyed[name]
        rows[:, m] = [index.get(k, -1) for k in keys]
    owner = np.argmax(rows >= 0, axis=1)  # the first input that has each sample gives its label and domain
    labels = np.empty(len(keys), first.labels.dtype)
    domain_of = np.empty(len(keys), dtype=object)
    for m, (name, part) in enumerate(parts.items()):
        have = rows[:, m] >= 0
        lab = part.labels[rows[have, m]]
        dom = np.asarray(part.domain_names, dtype=object)[part.domains[rows[have, m]]]
        mine = have & (owner == m)
        labels[mine] = part.labels[rows[mine, m]]
        domain_of[mine] = np.asarray(part.domain_names, dtype=object)[part.domains[rows[mine, m]]]
        for what, mine_vals, theirs in (("label", lab, labels[have]), ("domain", dom, domain_of[have])):
            bad = np.flatnonzero(mine_vals != theirs)
            if len(bad):
                i = np.flatnonzero(have)[bad[0]]
                other = names[owner[i]]
                asset, position = keys[i]
                raise DataError(f"inputs {other!r} and {name!r} disagree on the {what} of the window ending at "
                                f"sample {position} ({theirs[bad[0]]!r} vs {mine_vals[bad[0]]!r})", key=asset)
    domain_names = sorted(set(domain_of.tolist()))
    asset_names = sorted({k[0] for k in keys})
    asset_index = {a: i for i, a in enumerate(asset_names)}
    domain_index = {d: i for i, d in enumerate(domain_names)}
    return JoinedSamples(parts=dict(parts), rows=rows, labels=labels,
                         domains=np.array([domain_index[d] for d in domain_of], np.int64),
                         assets=np.array([asset_index[k[0]] for k in keys], np.int64),
                         domain_names=domain_names, asset_names=asset_names, classes=list(first.classes),
                         task_type=first.task_type, ends=np.array([k[1] for k in keys], np.int64),
                         length=max(int(p.length) for p in parts.values()))
