"""Windows streamed from the catalog through Ray Data, for datasets larger than a worker's memory.

The driver makes bounded-memory passes over the catalog: one over the key columns (which assets,
how many windows each) and, for group normalization, one over the features (mean and variance per
group, merged batch by batch). The assets are then dealt into read tasks of about
``rows_per_task`` rows. Each task reads its assets from the files that hold them, cuts and
normalizes their windows exactly as the in-memory path does, and yields them in shuffled blocks.
Ray Train hands every worker its own shard of the stream (``get_dataset_shard``); no process
holds the whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import Catalog
from .batch import Batch
from .normalize import GroupNormalizer
from .specs import (WindowSpec, dataset_channels, deal_assets, domain_filter, domain_rows, row_group_codes,
                    spec_columns, table_windows)
from .windows import unit_keys


@dataclass
class AssetIndex:
    """The assets of a dataset selection, sorted by "plant/asset" key."""

    keys: list[str]
    rows: np.ndarray  # int64: rows (runs) or samples (waveforms) per asset
    windows: np.ndarray  # int64: windows per asset
    domain_names: list[str]
    classes: list[str]


def _n_windows(n: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Windows of ``length`` every ``stride`` rows in a signal of ``n`` rows (as the cutters count)."""
    return np.where(n >= length, (n - length) // stride + 1, 0)


def index_assets(catalog: Catalog, dataset: str, spec: WindowSpec, *, split: str | None,
                 domains: list[str] | None) -> AssetIndex:
    """Counts rows and windows per asset in one pass over the key columns (bounded memory)."""
    waveforms = spec.kind == "waveforms"
    n_stored = len(dataset_channels(catalog, dataset) or [0]) if waveforms else 1
    columns = sorted({"plant", "asset", spec.domain, *(["values"] if waveforms else []),
                      *([spec.label] if spec.label and not waveforms and not spec.classes else [])})
    rows: dict[str, int] = {}
    windows: dict[str, int] = {}
    domain_names, classes = set(), set()
    for batch in catalog.scan(dataset, split, columns=columns, filter=domain_filter(spec, domains)):
        table = domain_rows(pa.Table.from_batches([batch]), spec, domains)
        if not table.num_rows:
            continue
        n = (pc.list_value_length(table.column("values")).to_numpy(zero_copy_only=False).astype(np.int64) // n_stored
             if waveforms else np.ones(table.num_rows, np.int64))
        per_row = _n_windows(n, spec.length, spec.stride) if waveforms else n
        counts = pa.table({"k": unit_keys(table), "n": n, "w": per_row}).group_by("k").aggregate(
            [("n", "sum"), ("w", "sum")])
        for k, r, w in zip(counts["k"].to_pylist(), counts["n_sum"].to_pylist(), counts["w_sum"].to_pylist()):
            rows[k] = rows.get(k, 0) + r
            windows[k] = windows.get(k, 0) + w
        domain_names.update(str(v) for v in pc.unique(table.column(spec.domain)).to_pylist())
        if spec.label in table.column_names and pa.types.is_string(table.column(spec.label).type):
            classes.update(pc.unique(table.column(spec.label)).to_pylist())
    if not rows:
        raise ValueError(f"no rows in {dataset!r} for split {split!r} and domains {domains}")
    keys = sorted(rows)
    n_rows = np.array([rows[k] for k in keys], np.int64)
    n_windows = (np.array([windows[k] for k in keys], np.int64) if waveforms
                 else _n_windows(n_rows, spec.length, spec.stride))
    return AssetIndex(keys, n_rows, n_windows, sorted(domain_names), sorted(classes))


def split_keys(index: AssetIndex, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Train and validation assets, drawn as :func:`~transferline.data.split_by_asset` draws them
    (same seed, same assets), among the assets that have at least one window."""
    keys = np.array([k for k, w in zip(index.keys, index.windows) if w > 0])
    parts = deal_assets(keys, {"train": 1 - val_fraction, "val": val_fraction}, seed)
    return sorted(parts["train"].tolist()), sorted(parts["val"].tolist())


def _read_assets(catalog: Catalog, dataset: str, spec: WindowSpec, split: str | None, domains: list[str] | None,
                 keys: list[str]) -> Iterator[pa.Table]:
    """The rows of ``keys``, batch by batch, from the files that hold them."""
    wanted = pa.array(keys)
    for batch in catalog.scan(dataset, split, columns=spec_columns(spec), filter=domain_filter(spec, domains),
                              assets=set(keys)):
        table = domain_rows(pa.Table.from_batches([batch]), spec, domains)
        table = table.filter(pc.is_in(unit_keys(table), wanted))
        if table.num_rows:
            yield table


def fit_normalizer(catalog: Catalog, dataset: str, spec: WindowSpec, *, split: str | None,
                   domains: list[str] | None, keys: list[str]) -> GroupNormalizer:
    """Per-group mean and standard deviation over the rows of ``keys``, merged batch by batch
    (Chan et al.'s pairwise update), as :meth:`GroupNormalizer.fit` computes them in memory.

    # NOTE: in memory the statistics cover the rows some window reads; here every row of the
    # assets. The two agree whenever ``stride`` is 1 (every row of an asset long enough is read).
    """
    stats: dict[int | None, Moments] = {}
    for table in _read_assets(catalog, dataset, spec, split, domains, keys):
        values = np.stack([table.column(c).to_numpy().astype(np.float32).astype(np.float64) for c in spec.features],
                          axis=1)
        codes = row_group_codes(table, spec)
        add_group_rows(stats, values, codes.to_numpy() if codes is not None else None)
    return group_normalizer(stats)


def add_group_rows(stats: dict, values: np.ndarray, groups: np.ndarray | None) -> None:
    """Adds rows ``values`` (float64 ``[N, C]``) to ``stats``' moments per row group (``groups``
    ``[N]``, None: one group 0) and over all rows (key None)."""
    groups = groups if groups is not None else np.zeros(len(values), np.int64)
    for g in np.unique(groups):
        stats.setdefault(int(g), Moments()).add(values[groups == g])
    stats.setdefault(None, Moments()).add(values)


def group_normalizer(stats: dict) -> GroupNormalizer:
    """The :class:`GroupNormalizer` of moments gathered by :func:`add_group_rows`."""
    names = sorted(g for g in stats if g is not None)
    mean = np.stack([stats[g].mean for g in [*names, None]])
    std = np.stack([stats[g].std for g in [*names, None]])
    return GroupNormalizer(groups=names + [-1], mean=mean, std=np.maximum(std, 1e-6))


class Moments:
    """Count, mean and variance per column of rows added batch by batch (Chan et al.'s pairwise
    update): what one pass over everything at once gives, in bounded memory."""

    def __init__(self) -> None:
        self.n, self._mean, self._m2 = 0, None, None

    def add(self, values: np.ndarray) -> None:
        """Adds the rows of ``values`` (float64 ``[N, C]``)."""
        n_b = len(values)
        if not n_b:
            return
        mean_b = values.mean(axis=0)
        m2_b = ((values - mean_b) ** 2).sum(axis=0)
        if not self.n:
            self.n, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        n, delta = self.n + n_b, mean_b - self._mean
        self._mean, self._m2 = self._mean + delta * n_b / n, self._m2 + m2_b + delta ** 2 * self.n * n_b / n
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @property
    def std(self) -> np.ndarray:
        """The population standard deviation (``np.std``'s default)."""
        return np.sqrt(self._m2 / self.n)


def deal_tasks(index: AssetIndex, keys: list[str], rows_per_task: int) -> list[list[str]]:
    """Consecutive assets (file order) grouped into read tasks of about ``rows_per_task`` rows."""
    rows = dict(zip(index.keys, index.rows.tolist()))
    tasks, current, size = [], [], 0
    for key in sorted(keys):
        current.append(key)
        size += rows[key]
        if size >= rows_per_task:
            tasks.append(current)
            current, size = [], 0
    return tasks + ([current] if current else [])


def _cut_task(batch: dict, *, root: str, dataset: str, spec: WindowSpec, split: str | None,
              domains: list[str] | None, normalizer: GroupNormalizer | None, domain_names: list[str],
              classes: list[str], seed: int, shuffle: bool, block_windows: int,
              channels: list[str] | None = None) -> Iterator[dict]:
    """Ray Data map: one read task's assets → blocks of windows ``{"x", "y", "domain"}``."""
    keys, task = str(batch["keys"][0]).split("\n"), int(batch["task"][0])
    parts = list(_read_assets(Catalog(root), dataset, spec, split, domains, keys))
    if not parts:
        return
    windows = table_windows(pa.concat_tables(parts), spec, classes=classes or None, channels=channels)
    del parts
    if normalizer is not None:
        windows = normalizer.transform(windows)
    to_global = np.array([domain_names.index(n) for n in windows.domain_names], np.int64)
    order = np.random.default_rng([seed, task]).permutation(len(windows)) if shuffle else np.arange(len(windows))
    for i in range(0, len(order), block_windows):
        idx = order[i:i + block_windows]
        yield {"x": windows.get(idx), "y": windows.labels[idx], "domain": to_global[windows.domains[idx]]}


@dataclass
class StreamPlan:
    """What the driver works out once to stream a selection's windows; cheap to send to workers."""

    root: str
    dataset: str
    spec: WindowSpec
    split: str | None
    domains: list[str] | None
    index: AssetIndex
    normalizer: GroupNormalizer | None
    rows_per_task: int = 100_000
    block_windows: int = 2048
    channels: list[str] | None = None  # a waveforms dataset's stored channels
    classes: list[str] | None = None  # the run's class list (default: the index's)

    def n_windows(self, keys: list[str]) -> int:
        counts = dict(zip(self.index.keys, self.index.windows.tolist()))
        return int(sum(counts[k] for k in keys))

    @property
    def channel_names(self) -> list[str]:
        """The channels of the cut windows, as the cutters name them (a waveform without stored
        channel names has one, ``signal``)."""
        return list(self.spec.features) or list(self.channels or ["signal"])

    def dataset_of(self, keys: list[str], *, seed: int, shuffle: bool, num_cpus: float = 1):
        """A lazy Ray Dataset of the windows of ``keys`` (read tasks run when it is iterated)."""
        import ray.data

        tasks = deal_tasks(self.index, keys, self.rows_per_task)
        items = [{"task": i, "keys": "\n".join(k)} for i, k in enumerate(tasks)]
        return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            _cut_task, batch_size=1, num_cpus=num_cpus,
            fn_kwargs={"root": self.root, "dataset": self.dataset, "spec": self.spec, "split": self.split,
                       "domains": self.domains, "normalizer": self.normalizer, "seed": seed, "shuffle": shuffle,
                       "domain_names": self.index.domain_names, "classes": self.classes or self.index.classes,
                       "block_windows": self.block_windows, "channels": self.channels})

    def stream_of(self, keys: list[str], source, shuffle_windows: int = 8192) -> WindowStream:
        """``source`` (the Ray Dataset of :meth:`dataset_of`, or a worker's shard of it) as windows."""
        return WindowStream(source, n_windows=self.n_windows(keys), n_channels=len(self.channel_names),
                            length=self.spec.length, shuffle_windows=shuffle_windows)


def plan_stream(catalog: Catalog, dataset: str, spec: WindowSpec, *, split: str | None, domains: list[str] | None,
                rows_per_task: int = 100_000) -> StreamPlan:
    """Indexes the selection (one pass over its key columns)."""
    index = index_assets(catalog, dataset, spec, split=split, domains=domains)
    channels = dataset_channels(catalog, dataset) if spec.kind == "waveforms" else None
    return StreamPlan(str(catalog.root), dataset, spec, split, domains, index, None, rows_per_task, channels=channels)


class RayStream:
    """Samples read from a Ray Dataset of ``{"x", "y", "domain"}`` blocks, or from a Ray Train
    worker's shard of one: what training needs of in-memory samples (their number, :meth:`batches`,
    :meth:`sample`), with ``x`` going into each :class:`Batch` under ``modality``."""

    modality = "series"

    def __init__(self, source, *, n: int, shuffle_buffer: int = 8192) -> None:
        self.source, self._n, self.shuffle_buffer = source, n, shuffle_buffer

    def __len__(self) -> int:
        return self._n

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> Iterator[Batch]:
        """One pass as :class:`Batch` es on the CPU; ``shuffle`` mixes samples of consecutive
        blocks in a local buffer of ``shuffle_buffer``."""
        for b in self.source.iter_torch_batches(
                batch_size=batch_size, drop_last=drop_last, device="cpu",
                local_shuffle_buffer_size=self.shuffle_buffer if shuffle else None,
                local_shuffle_seed=seed if shuffle else None):
            yield Batch({self.modality: b["x"]}, b["y"], b["domain"])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The model input of the first ``n`` samples of a pass (``rng`` unused: a stream has no
        random access)."""
        return next(self.batches(n)).inputs[self.modality].numpy()


class WindowStream(RayStream):
    """Series windows ``[B, C, L]`` streamed (see :class:`RayStream`), with their channels and length."""

    def __init__(self, source, *, n_windows: int, n_channels: int, length: int, shuffle_windows: int = 8192) -> None:
        super().__init__(source, n=n_windows, shuffle_buffer=shuffle_windows)
        self.n_channels, self.length = n_channels, length
