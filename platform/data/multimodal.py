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

:func:`join_by_time` joins inputs of different kinds by plant, asset and time instead: each event
of an anchor input (an inspection image, a maintenance note) is one sample, and every other input
contributes what its unit recorded at that moment, within a tolerance: series windows (and
tabular rows) the window whose last row is the latest at or before the event, images and texts
the nearest one in time. What no input recorded near an event is marked absent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ..errors import DataError
from .inputs import PRESENT
from .preprocess import standardize_rows
from .windows import NO_TIME, Windows

__all__ = ["PRESENT", "JoinedSamples", "RowValues", "join_by_time", "join_samples", "sample_keys"]


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
    anchor: str | None = None  # joined by time: the input whose events are the samples (ends: their times, µs)

    @property
    def multi_label(self) -> bool:
        """Whether each sample has a set of labels: the anchor's events' (joined by key: one class each)."""
        return self.anchor is not None and bool(getattr(self.parts[self.anchor], "multi_label", False))

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
        rows = np.atleast_2d(self.rows[index])
        out = {}
        for m, (name, part) in enumerate(self.parts.items()):
            have = rows[:, m] >= 0
            # windows [C, L], rows [C], images [C, H, W]: float32; texts: token ids (0 = padding)
            x = np.zeros((len(rows), *part.sample_shape), getattr(part, "dtype", np.float32))
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

    def _events(self):
        """The anchor's samples, one per joined sample (joined by time only)."""
        if self.anchor is None:
            raise ValueError("per-class draws and hold-outs take samples joined by time (events: images, texts); "
                             "series windows joined by key take target.labelled_units and a test split")
        return self.parts[self.anchor].subset(self.rows[:, self.names.index(self.anchor)])

    def per_class(self, k: int, seed: int) -> "JoinedSamples":
        """``k`` events of every class, drawn as the anchor's samples draw them."""
        return self.subset(self._events().per_class_index(k, seed))

    def holdout(self, fraction: float, seed: int) -> tuple["JoinedSamples", "JoinedSamples"]:
        """``(rest, held)``: ``fraction`` of each class's events held out, as the anchor's samples hold out."""
        held = self._events().holdout_mask(fraction, seed)
        return self.subset(~held), self.subset(held)

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


def join_by_time(parts: dict, *, anchor: str, tolerance_s: float, how: str = "outer") -> JoinedSamples:
    """Joins inputs of any kind by plant, asset and time: one sample per event of input ``anchor``
    (images or texts with their unit and time), labelled as the anchor labels it.

    Every other input joins each event within ``tolerance_s`` seconds on the same unit
    (``plant/asset``): series windows and tabular rows (:class:`~transferline.data.Windows` read
    with times) by the window whose last row is the latest at or before the event; images and texts
    by the nearest one before or after it. An input with nothing in reach is absent for that event;
    ``how="inner"`` keeps only the events every input reached. Samples keep the anchor's order.

    Raises:
        ValueError: ``anchor`` is not an input or holds series windows, or a tolerance below 0.
        DataError: an event or a series row without a time, naming the input and the sample.
    """
    names = list(parts)
    if anchor not in parts:
        raise ValueError(f"anchor {anchor!r} is not one of the inputs {names}")
    if how not in ("outer", "inner"):
        raise ValueError(f"how: 'outer' or 'inner', not {how!r}")
    if not (isinstance(tolerance_s, (int, float)) and np.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ValueError(f"tolerance_s: seconds, a number >= 0, not {tolerance_s!r}")
    events = parts[anchor]
    if isinstance(events, Windows):
        raise ValueError(f"anchor {anchor!r} holds series windows; the anchor is an input of events (images, texts) "
                         "whose times the other inputs are joined at")
    units, times = event_times(anchor, events)
    tolerance = int(round(tolerance_s * 1e6))
    rows = np.full((len(events), len(names)), -1, np.int64)
    rows[:, names.index(anchor)] = np.arange(len(events))
    for m, name in enumerate(names):
        if name != anchor:
            rows[:, m] = reach_events(name, parts[name], units, times, tolerance)
    if how == "inner":
        rows = rows[(rows >= 0).all(axis=1)]
    own = rows[:, names.index(anchor)]
    labels = events.labels[own]
    domain_names = list(events.domain_names)
    stamps = np.datetime_as_string(times[own].astype("datetime64[us]"), unit="s")
    return JoinedSamples(parts=dict(parts), rows=rows, labels=labels, domains=events.domains[own],
                         assets=np.arange(len(rows), dtype=np.int64),  # each event its own unit, as images are
                         domain_names=domain_names, asset_names=[f"{u}@{t}" for u, t in zip(units[own], stamps)],
                         classes=list(events.classes), task_type=getattr(events, "task_type", "classification"),
                         ends=times[own], length=0, anchor=anchor)


def reach_events(name: str, part, units: np.ndarray, times: np.ndarray, tolerance: int) -> np.ndarray:
    """For each event ``(units[i], times[i])`` the sample of input ``name`` it joins (-1: none
    within ``tolerance`` µs): series windows (and tabular rows) ending at or before it, any other
    input's nearest sample."""
    if isinstance(part, Windows):
        try:
            theirs = np.asarray(part.asset_names, dtype=object)[part.assets], part.end_times()
        except ValueError as exc:
            raise DataError(f"input {name!r}: {exc}", key=name) from None
        return _reach(units, times, *theirs, tolerance, before_only=True)
    return _reach(units, times, *event_times(name, part), tolerance, before_only=False)


def event_times(name: str, part) -> tuple[np.ndarray, np.ndarray]:
    """An input's events' units and times; an event without a time is a DataError naming it."""
    units, times = getattr(part, "units", None), getattr(part, "times", None)
    if units is None or times is None:
        raise DataError(f"input {name!r} ({type(part).__name__}) carries no units and times to join by", key=name)
    missing = np.flatnonzero(times == NO_TIME)
    if len(missing):
        which = part.names[missing[0]] if getattr(part, "names", None) else f"#{missing[0]}"
        raise DataError(f"{len(missing)} of its {len(times)} samples have no time, the first {which!r} of {units[missing[0]]}; "
                        "ingest times with them (an image manifest's ts column, a text file's --time-col)", key=name)
    return np.asarray(units, dtype=object), np.asarray(times, np.int64)


def _reach(units: np.ndarray, times: np.ndarray, their_units: np.ndarray, their_times: np.ndarray, tolerance: int,
           *, before_only: bool) -> np.ndarray:
    """For each event ``(units[i], times[i])`` the index of the other input's sample on the same unit
    within ``tolerance`` µs: the latest at or before it (``before_only``), else the nearest (ties: the
    earlier); -1 where none."""
    out = np.full(len(units), -1, np.int64)
    for unit in np.unique(units):
        mine = np.flatnonzero(units == unit)
        candidates = np.flatnonzero(their_units == unit)
        if not len(candidates):
            continue
        order = candidates[np.argsort(their_times[candidates], kind="stable")]
        sorted_times = their_times[order]
        t = times[mine]
        before = np.searchsorted(sorted_times, t, side="right") - 1  # the latest at or before
        gap_before = np.where(before >= 0, t - sorted_times[np.maximum(before, 0)], np.iinfo(np.int64).max)
        best, gap = before, gap_before
        if not before_only:
            after = before + 1
            has_after = after < len(order)
            gap_after = np.where(has_after, sorted_times[np.minimum(after, len(order) - 1)] - t, np.iinfo(np.int64).max)
            later = gap_after < gap_before
            best, gap = np.where(later, after, before), np.where(later, gap_after, gap_before)
        ok = gap <= tolerance
        out[mine[ok]] = order[best[ok]]
    return out
