"""Sliding windows over catalog datasets, with labels, domains and assets carried per window.

All windows of a dataset share one channel-major array ``values[C, T]`` (rows of every asset laid
end to end). A window is an end index and the start of its asset; ``get`` gathers a batch with
one fancy-index, left-padding windows that would reach before their asset's first row by
repeating that row (used for the last window of short test engines).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .preprocess import standardize


@dataclass
class Windows:
    """Windows over ``values[C, T]``; every per-window array has one entry per window."""

    values: np.ndarray  # float32 [C, T]
    length: int
    ends: np.ndarray  # int64 [N], exclusive end index into T
    asset_starts: np.ndarray  # int64 [N], first row of the window's asset
    labels: np.ndarray  # float32 (regression) or int64 (classes) [N]
    domains: np.ndarray  # int64 [N], index into domain_names
    assets: np.ndarray  # int64 [N], index into asset_names
    domain_names: list[str] = field(default_factory=list)
    asset_names: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    task_type: str = "regression"  # or "classification"
    classes: list[str] = field(default_factory=list)
    per_window_norm: bool = False
    row_groups: np.ndarray | None = None  # int64 [T]: normalization group of each row (e.g. operating condition)
    times: np.ndarray | None = None  # int64 [T]: each row's time in µs since the epoch (UTC), where read

    def end_times(self) -> np.ndarray:
        """int64 ``[N]``: the time of each window's last row (µs since the epoch, UTC)."""
        if self.times is None:
            raise ValueError("these windows carry no times: cut them from a runs dataset with a ts column, read "
                             "with times=True (waveform segments have none)")
        return self.times[self.ends - 1]

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def n_channels(self) -> int:
        return self.values.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(C, L)``."""
        return (self.n_channels, self.length)

    def get(self, index: np.ndarray | list[int] | slice) -> np.ndarray:
        """The windows at ``index`` as float32 ``[B, C, L]``."""
        ends, starts = self.ends[index], self.asset_starts[index]
        rows = np.maximum(ends[:, None] - self.length + np.arange(self.length)[None, :], starts[:, None])
        x = self.values[:, rows].transpose(1, 0, 2)  # [B, C, L]
        if self.per_window_norm:
            return standardize(x, "window")
        return np.ascontiguousarray(x, dtype=np.float32)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        """One pass as :class:`~transferline.data.batch.Batch` es (``series`` ``[B, C, L]``, targets,
        domains), shuffled with ``seed`` if asked."""
        from .batch import Batch
        from .torch_dataset import WindowDataset

        loader = WindowDataset(self).loader(batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
        return (Batch({"series": x}, y, d) for x, y, d in loader)

    def draw(self, n: int, rng: np.random.Generator) -> "Windows":
        """Up to ``n`` windows drawn without replacement by ``rng``, kept in window order."""
        return self.subset(np.sort(rng.choice(len(self), min(n, len(self)), replace=False)))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The values of :meth:`draw` as ``[n, C, L]``."""
        drawn = self.draw(n, rng)
        return drawn.get(np.arange(len(drawn)))

    def subset(self, mask: np.ndarray) -> "Windows":
        """The windows where ``mask`` is true (or at integer positions ``mask``), sharing ``values``."""
        return replace(self, ends=self.ends[mask], asset_starts=self.asset_starts[mask], labels=self.labels[mask],
                       domains=self.domains[mask], assets=self.assets[mask])

    def last_per_asset(self) -> "Windows":
        """One window per asset: the one ending last."""
        order = np.lexsort((self.ends, self.assets))
        last = order[np.r_[self.assets[order][1:] != self.assets[order][:-1], True]]
        return self.subset(last)

    def covered_rows(self) -> np.ndarray:
        """Boolean mask over T of the rows at least one window reads."""
        diff = np.zeros(self.values.shape[1] + 1, np.int64)
        np.add.at(diff, np.maximum(self.ends - self.length, self.asset_starts), 1)
        np.add.at(diff, self.ends, -1)
        return np.cumsum(diff[:-1]) > 0

    def domain_mask(self, names: str | list[str]) -> np.ndarray:
        names = [names] if isinstance(names, str) else names
        unknown = [n for n in names if n not in self.domain_names]
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; known: {self.domain_names}")
        return np.isin(self.domains, [self.domain_names.index(n) for n in names])


def codes(values: pa.ChunkedArray | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes and sorted names for a column of labels."""
    arr = np.asarray(values.to_pylist() if isinstance(values, (pa.Array, pa.ChunkedArray)) else values).astype(str)
    names, inverse = np.unique(arr, return_inverse=True)
    return inverse.astype(np.int64), names.tolist()


def run_windows(table: pa.Table, *, features: list[str], length: int, stride: int = 1, label: str | None = None,
                label_cap: float | None = None, domain: str = "plant", last_only: bool = False,
                classes: list[str] | None = None, pad_short: bool = False,
                row_group: str | None = None, per_window_norm: bool = False, times: str | None = None) -> Windows:
    """Windows over a ``runs`` table, one asset after another in step order.

    Args:
        table: rows with plant, asset, step, the ``features`` and the ``label`` column.
        features: columns that become channels.
        length: window length in rows.
        stride: rows between consecutive window ends.
        label: label column read at each window's last row; numeric → regression, text → classes.
        label_cap: cap on numeric labels (e.g. RUL 125).
        domain: column whose value names each window's domain.
        last_only: only the last window of each asset (C-MAPSS test protocol).
        classes: class names, in id order, for a text label (default: sorted distinct values).
        pad_short: keep assets shorter than ``length`` by left-padding (always on with ``last_only``).
        row_group: integer column naming each row's normalization group (e.g. operating condition).
        per_window_norm: standardize each window on its own when it is read (``normalize: window``).
        times: timestamp column giving each row's time (kept as µs since the epoch, to join windows
            with images or texts by time); every row needs one.
    """
    missing = [c for c in [*features, "plant", "asset", "step", domain, label, times] if c and c not in table.column_names]
    if missing:
        raise ValueError(f"columns {missing} not in table (has {table.column_names})")
    table = table.sort_by([("plant", "ascending"), ("asset", "ascending"), ("step", "ascending")])
    values = np.stack([table.column(c).to_numpy().astype(np.float32, copy=False) for c in features])
    asset_codes, asset_names = codes(unit_keys(table))
    bounds = np.flatnonzero(np.r_[True, asset_codes[1:] != asset_codes[:-1], True])
    starts, stops = bounds[:-1], bounds[1:]
    ends, owner = [], []
    for a0, a1 in zip(starts, stops):
        if last_only:
            e = np.array([a1])
        else:
            first = a0 + length if (a1 - a0 >= length or not pad_short) else a1
            e = np.arange(a1, first - 1, -stride)[::-1]  # anchored at the last row
        ends.append(e)
        owner.append(np.full(len(e), a0))
    ends, asset_starts = np.concatenate(ends).astype(np.int64), np.concatenate(owner).astype(np.int64)
    task_type, class_names = "regression", []
    labels = np.zeros(len(ends), np.float32)
    if label:
        col = table.column(label)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            ids, class_names = _class_ids(col, label, classes)
            labels = ids[ends - 1]
            task_type = "classification"
        else:
            labels = col.to_numpy().astype(np.float32)[ends - 1]
            if label_cap is not None:
                labels = np.minimum(labels, label_cap)
    dom_codes, dom_names = codes(table.column(domain))
    return Windows(values=values, length=length, ends=ends, asset_starts=asset_starts, labels=labels,
                   domains=dom_codes[ends - 1], assets=asset_codes[ends - 1], domain_names=dom_names,
                   asset_names=asset_names, channels=list(features), task_type=task_type, classes=class_names,
                   row_groups=table.column(row_group).to_numpy().astype(np.int64) if row_group else None,
                   per_window_norm=per_window_norm, times=row_times(table, times) if times else None)


def row_times(table: pa.Table, column: str = "ts") -> np.ndarray:
    """int64 ``[T]``: a timestamp column as µs since the epoch (UTC); a row without one is an error
    naming its asset."""
    col = table.column(column)
    if col.null_count:
        first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{col.null_count} row(s) have no time in column {column!r}, the first of asset "
                         f"{table.column('plant')[first].as_py()}/{table.column('asset')[first].as_py()} at step "
                         f"{table.column('step')[first].as_py()}; joining by time needs every row's time")
    if not pa.types.is_timestamp(col.type):
        raise ValueError(f"column {column!r} holds {col.type}, not timestamps")
    return _micros(col).to_numpy().astype(np.int64, copy=False)


NO_TIME = np.iinfo(np.int64).min  # an event (image, text) recorded without a time


def event_keys(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each row's unit (``plant/asset``, object ``[N]``) and time (int64 µs since the epoch, UTC;
    :data:`NO_TIME` where it has none) from a table's ``plant``, ``asset`` and ``ts`` columns."""
    return (np.asarray(unit_keys(table).to_pylist(), dtype=object),
            pc.fill_null(_micros(table.column("ts")), NO_TIME).to_numpy().astype(np.int64, copy=False))


def unit_keys(table: pa.Table) -> pa.Array:
    """Each row's ``plant/asset``."""
    return pc.binary_join_element_wise(table.column("plant"), table.column("asset"), "/")


def _micros(column) -> pa.ChunkedArray:
    """A timestamp column as int64 µs since the epoch (UTC)."""
    return pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())


def waveform_windows(table: pa.Table, *, length: int, stride: int | None = None, label: str = "label_id",
                     domain: str = "load_hp", classes: list[str] | None = None, per_window_norm: bool = True,
                     channels: list[str] | None = None, features: list[str] | None = None) -> Windows:
    """Windows over a ``waveforms`` table: each row's ``values`` list is one asset's signal.

    Args:
        channels: the dataset's channel names (its manifest's ``channels``); each row's ``values``
            holds them channel-major. Default: one channel.
        features: the channels to cut windows from, by name (default: all).
        label: a text column (class names, ids by ``classes``) or an integer column of class ids.
        classes: class names in id order (default: the sorted text labels).

    The flat signal buffer of a one-channel dataset is taken from Arrow without a copy where the
    column has one chunk.
    """
    stride = stride or length
    stored = list(channels or ["signal"])
    unknown = [f for f in features or [] if f not in stored]
    if unknown:
        raise ValueError(f"channel(s) {unknown} not in the dataset; it has {stored}")
    pick = [stored.index(f) for f in features] if features else list(range(len(stored)))
    chunks = table.column("values")
    col = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False)  # zero-copy for float32 without nulls
    offsets = col.offsets.to_numpy()
    offsets = offsets - offsets[0]
    if len(stored) > 1 or pick != [0]:
        flat, offsets = _channel_major(flat, offsets, len(stored), pick, table)
    else:
        flat = flat[None, :]
    ends, owner, row_of = [], [], []
    for row, (a0, a1) in enumerate(zip(offsets[:-1], offsets[1:])):
        e = np.arange(a0 + length, a1 + 1, stride)
        ends.append(e)
        owner.append(np.full(len(e), a0))
        row_of.append(np.full(len(e), row))
    ends, asset_starts, rows = (np.concatenate(a).astype(np.int64) for a in (ends, owner, row_of))
    labels, classes = _class_ids(table.column(label), label, classes)
    dom_codes, dom_names = codes(table.column(domain))
    asset_codes, asset_names = codes(unit_keys(table))
    return Windows(values=flat, length=length, ends=ends, asset_starts=asset_starts, labels=labels[rows],
                   domains=dom_codes[rows], assets=asset_codes[rows], domain_names=dom_names,
                   asset_names=asset_names, channels=[stored[i] for i in pick], task_type="classification",
                   classes=classes, per_window_norm=per_window_norm)


def _channel_major(flat: np.ndarray, offsets: np.ndarray, n_channels: int, pick: list[int],
                   table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """``[C', T]`` of the picked channels of every row laid end to end, and the rows' time offsets."""
    pieces, lengths = [], []
    for row, (a0, a1) in enumerate(zip(offsets[:-1], offsets[1:])):
        if (a1 - a0) % n_channels:
            raise ValueError(f"asset {table.column('asset')[row].as_py()!r}: {a1 - a0} values do not split into "
                             f"{n_channels} channels")
        pieces.append(flat[a0:a1].reshape(n_channels, -1)[pick])
        lengths.append((a1 - a0) // n_channels)
    return np.concatenate(pieces, axis=1), np.r_[0, np.cumsum(lengths)].astype(np.int64)


def _class_ids(col: pa.ChunkedArray, name: str, classes: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Class ids of a text column (by ``classes``) or an integer id column (checked against ``classes``)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        if col.null_count:
            raise ValueError(f"label column {name!r} has {col.null_count} empty value(s); every row needs a class")
        found = pc.unique(col).to_pylist()
        classes = list(classes or sorted(found))
        outside = sorted(set(found) - set(classes), key=str)
        if outside:
            raise ValueError(f"label column {name!r} has class(es) {outside} outside the class list {classes}; "
                             "ingest them with the dataset's classes, or clear the spec's classes (null) to take "
                             "the dataset's")
        return pc.index_in(col, value_set=pa.array(classes, col.type)).to_numpy().astype(np.int64), classes
    ids = col.to_numpy().astype(np.int64)
    if classes and len(ids) and (ids.min() < 0 or ids.max() >= len(classes)):
        raise ValueError(f"label column {name!r} has class id {int(ids.max())} outside the {len(classes)} classes "
                         f"{classes}")
    return ids, list(classes or [])
