"""Images and texts streamed from the catalog through Ray Data, as series windows are (``stream.py``).

The driver makes one pass over the selection's small columns (domain and label, file by file) and
keeps, per selected sample, its file, its row there, its target and its domain: samples are
numbered in the order the in-memory path reads them, so a split drawn over those numbers is the
in-memory split. The samples are dealt into read tasks of ``samples_per_task`` consecutive rows of
one file. Each task reads only the Parquet row groups that hold its rows, decodes and preprocesses
them with the input spec's preprocessing (the one training in memory and serving use), and yields
them in shuffled blocks. No process holds the whole dataset's images or texts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..catalog import Catalog
from .images import class_ids, domain_ids
from .inputs import ImageInput, TextInput
from .specs import deal_assets
from .stream import RayStream
from .windows import event_keys

# modality → (the encoded sample's column, the target's column)
COLUMNS = {"image": ("image", "label"), "text": ("text", "labels")}


@dataclass
class SampleIndex:
    """The selected samples of a dataset, numbered in read order (one entry each per array)."""

    files: list[str]  # absolute paths, in the catalog's read order
    file_of: np.ndarray  # int64 [N]: index into files
    row_of: np.ndarray  # int64 [N]: row in that file
    targets: np.ndarray  # int64 [N] class ids, or float32 [N, K] multi-hot
    domains: np.ndarray  # int64 [N], index into domain_names
    domain_names: list[str]
    classes: list[str]
    multi_label: bool = False
    units: np.ndarray | None = None  # object [N]: each sample's plant/asset (indexed with ``events=True``)
    times: np.ndarray | None = None  # int64 [N]: when (µs since the epoch, UTC)

    def __len__(self) -> int:
        return len(self.file_of)


def index_samples(catalog: Catalog, dataset: str, spec: ImageInput | TextInput, *, split: str | None,
                  domains: list[str] | None, classes: list[str] | None, domain: str = "plant",
                  events: bool = False) -> SampleIndex:
    """One pass over the domain and label columns of ``dataset`` (file by file, bounded memory but
    for a few numbers per sample); class ids as :func:`~transferline.data.images.load_images` and
    :func:`~transferline.data.text.load_texts` give them. ``events``: each sample's unit and time
    too (samples that other inputs join by time)."""
    label_column = COLUMNS[spec.modality][1]
    keys = ["plant", "asset", "ts"] if events else []
    files = [str(f) for f in catalog.files(dataset, split)]
    if not files:
        raise ValueError(f"no files in {dataset!r} for split {split!r}")
    file_of, row_of, labels, doms, units, times = [], [], [], [], [], []
    for i, path in enumerate(files):
        table = pq.read_table(path, columns=list(dict.fromkeys([domain, label_column, *keys])))
        keep = (pc.is_in(table.column(domain), pa.array([str(d) for d in domains])) if domains
                else pa.array(np.ones(table.num_rows, bool)))
        rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
        table = table.take(pa.array(rows, pa.int64()))
        file_of.append(np.full(len(rows), i, np.int64))
        row_of.append(rows.astype(np.int64))
        labels.extend(table.column(label_column).to_pylist())
        doms.append(table.column(domain))
        if events:
            unit, time = event_keys(table)
            units.append(unit)
            times.append(time)
    if not labels:
        raise ValueError(f"no samples in {dataset!r} for split {split!r} and domains {domains}")
    domain_names, domain_codes = domain_ids(pa.chunked_array([c for part in doms for c in part.chunks]))
    if spec.modality == "image":
        classes = list(classes or catalog.manifest(dataset).extra.get("classes") or sorted(set(labels)))
        targets, multi = class_ids(labels, classes, dataset), False
    else:
        from .text import dataset_labels, label_targets

        everything, multi = dataset_labels(catalog, dataset)
        classes = list(classes or everything)
        targets = label_targets(labels, classes, multi, dataset)
    return SampleIndex(files, np.concatenate(file_of), np.concatenate(row_of), targets, domain_codes,
                       domain_names, classes, multi, units=np.concatenate(units) if events else None,
                       times=np.concatenate(times) if events else None)


_BUILT: dict[str, object] = {}


def _preprocess(spec: ImageInput | TextInput):
    """The spec's preprocessing, built once per read process (a tokenizer loads once)."""
    from .preprocess import build_preprocess

    key = repr(spec)
    if key not in _BUILT:
        _BUILT[key] = build_preprocess(spec)
    return _BUILT[key]


def read_rows(path: str, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """``columns`` at ``rows`` (in that order) of one Parquet file, reading only the row groups that hold them."""
    meta = pq.ParquetFile(path).metadata
    starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    group_of = np.searchsorted(starts, rows, side="right") - 1
    groups = np.unique(group_of)
    table = pq.ParquetFile(path).read_row_groups(groups.tolist(), columns=columns)
    base = dict(zip(groups.tolist(), np.cumsum([0] + [meta.row_group(g).num_rows for g in groups[:-1]]).tolist()))
    local = rows - starts[group_of] + np.array([base[g] for g in group_of.tolist()], np.int64)
    return table.take(pa.array(local, pa.int64()))


def row_tasks(files: list[str], file_of: np.ndarray, row_of: np.ndarray, numbers: np.ndarray,
              per_task: int) -> list[dict]:
    """Read tasks ``{"task", "file", "rows"}`` over the samples ``numbers`` (indexes into
    ``file_of`` / ``row_of``): runs of at most ``per_task`` rows of one file."""
    items = []
    for f in np.unique(file_of[numbers]):
        rows = row_of[numbers[file_of[numbers] == f]]
        for lo in range(0, len(rows), per_task):
            items.append({"task": len(items), "file": files[f], "rows": rows[lo:lo + per_task].tolist()})
    return items


def read_numbers(files: list[str], file_of: np.ndarray, row_of: np.ndarray, numbers: np.ndarray,
                 columns: list[str]) -> pa.Table:
    """``columns`` of the samples ``numbers`` (indexes into ``file_of`` / ``row_of``; at least one),
    file by file."""
    return pa.concat_tables([read_rows(files[f], row_of[numbers[file_of[numbers] == f]], columns)
                             for f in np.unique(file_of[numbers])])


class ShardStream:
    """A Ray Train worker's shard of a streamed training set, as the text fits draw from it: ``len``
    is the whole stream's number of samples; :meth:`cycle` yields batches without end, pass after
    pass over the shard (each mixed in a local buffer of ``shuffle_buffer``); :meth:`steps` is the
    same number of steps per epoch on every worker (each shard holds ``len // world`` samples)."""

    def __init__(self, shard, n: int, shuffle_buffer: int = 1024) -> None:
        self.shard, self.n, self.shuffle_buffer = shard, n, shuffle_buffer

    def __len__(self) -> int:
        return self.n

    def steps(self, world: int, batch_size: int) -> int:
        return max(1, self.n // world // batch_size)

    def cycle(self, batch_size: int, rng: np.random.Generator, rank: int = 0) -> Iterator[dict]:
        while True:
            empty = True
            for batch in self.shard.iter_batches(batch_size=batch_size, batch_format="numpy",
                                                 local_shuffle_buffer_size=self.shuffle_buffer,
                                                 local_shuffle_seed=int(rng.integers(2**31))):
                empty = False
                yield batch
            if empty:
                raise ValueError(f"worker {rank}: its shard of the training set is empty")


def _read_rows(path: str, rows: np.ndarray, column: str) -> list:
    """The values of ``column`` at ``rows`` of one Parquet file (see :func:`read_rows`)."""
    return read_rows(path, rows, [column]).column(column).to_pylist()


def _decode_task(batch: dict, *, spec: ImageInput | TextInput, seed: int, shuffle: bool,
                 block: int) -> Iterator[dict]:
    """Ray Data map: one read task's rows → blocks of samples ``{"x", "y", "domain", "number"}``
    (``number``: the sample's place in the selection's read order)."""
    task, path = int(batch["task"][0]), str(batch["file"][0])
    rows, targets, domains, numbers = (np.asarray(batch[k][0]) for k in ("rows", "targets", "domains", "numbers"))
    values = _read_rows(path, rows.astype(np.int64), COLUMNS[spec.modality][0])
    order = np.random.default_rng([seed, task]).permutation(len(rows)) if shuffle else np.arange(len(rows))
    for lo in range(0, len(order), block):
        idx = order[lo:lo + block]
        yield {"x": _preprocess(spec)([values[i] for i in idx]), "y": targets[idx], "domain": domains[idx],
               "number": numbers[idx].astype(np.int64)}


@dataclass
class SamplePlan:
    """What the driver works out once to stream a selection's images or texts; cheap to send."""

    root: str
    dataset: str
    spec: ImageInput | TextInput
    index: SampleIndex
    samples_per_task: int = 256
    block: int = 64
    normalizer = None  # images and texts are normalized by their input spec, not by fitted statistics

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation sample numbers, drawn as the in-memory path draws them (each
        sample its own unit, same seed, same samples)."""
        parts = deal_assets(np.arange(len(self.index)), {"train": 1 - val_fraction, "val": val_fraction}, seed)
        return np.sort(parts["train"]), np.sort(parts["val"])

    def tasks(self, numbers: np.ndarray) -> list[dict]:
        """Read tasks over ``numbers``: runs of at most ``samples_per_task`` samples of one file."""
        numbers = np.sort(np.asarray(numbers, np.int64))
        index, items = self.index, []
        for f in np.unique(index.file_of[numbers]):
            mine = numbers[index.file_of[numbers] == f]
            for lo in range(0, len(mine), self.samples_per_task):
                part = mine[lo:lo + self.samples_per_task]
                items.append({"task": len(items), "file": index.files[f], "rows": index.row_of[part].tolist(),
                              "targets": index.targets[part].tolist(), "domains": index.domains[part].tolist(),
                              "numbers": part.tolist()})
        return items

    def dataset_of(self, numbers: np.ndarray, *, seed: int, shuffle: bool, num_cpus: float = 1):
        """A lazy Ray Dataset of the samples ``numbers`` (read tasks run when it is iterated)."""
        import ray.data

        items = self.tasks(numbers)
        return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            _decode_task, batch_size=1, num_cpus=num_cpus,
            fn_kwargs={"spec": self.spec, "seed": seed, "shuffle": shuffle, "block": self.block})

    def stream_of(self, numbers: np.ndarray, source, shuffle_buffer: int = 1024) -> "SampleStream":
        """``source`` (the Ray Dataset of :meth:`dataset_of`, or a worker's shard of it) as samples."""
        return SampleStream(source, n=len(numbers), shuffle_buffer=shuffle_buffer, modality=self.spec.modality,
                            classes=self.index.classes, multi_label=self.index.multi_label,
                            domain_names=self.index.domain_names)


class SampleStream(RayStream):
    """Images (``[B, C, H, W]``) or token ids (``[B, L]``) streamed, with the run's classes."""

    def __init__(self, source, *, n: int, shuffle_buffer: int, modality: str, classes: list[str],
                 multi_label: bool, domain_names: list[str]) -> None:
        super().__init__(source, n=n, shuffle_buffer=shuffle_buffer)
        self.modality, self.classes, self.multi_label, self.domain_names = modality, classes, multi_label, domain_names


def plan_samples(catalog: Catalog, dataset: str, spec: ImageInput | TextInput, *, split: str | None,
                 domains: list[str] | None, classes: list[str] | None,
                 samples_per_task: int = 256) -> SamplePlan:
    """Indexes the selection (one pass over its domain and label columns)."""
    index = index_samples(catalog, dataset, spec, split=split, domains=domains, classes=classes)
    return SamplePlan(str(catalog.root), dataset, spec, index, samples_per_task)
