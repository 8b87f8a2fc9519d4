"""Inputs joined by time streamed through Ray Data: events (images, texts) with what their machine
recorded around them, joined inside each read task.

A run joined by time (:func:`~transferline.data.multimodal.join_by_time`) has one sample per event
of its anchor input. Streamed, the driver indexes the anchor's events (file, row, label, domain,
unit and time: one pass over small columns) in the order the in-memory path reads them, and splits
them as it does (each event its own unit). Read tasks take runs of events grouped by unit: each
reads its events' images or texts, reads every other input for those units only (series windows
with their times, tabular rows, notes) through a catalog view of the units, joins them with the
in-memory path's rule (:func:`~transferline.data.multimodal.reach_events`), standardizes each input
with the statistics the driver fitted, and yields blocks of ``{x_<input>, present, y, domain}``.

The driver fits those statistics over the training events' joined samples, a few units at a time
(a unit's events all in one group), merging per-group moments: what :class:`GroupNormalizer.fit`
and :meth:`RowValues.statistics` compute over the whole training set in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import Catalog
from ..errors import DataError
from .inputs import PRESENT, InputSpec, TabularInput
from .multimodal import RowValues, event_times, reach_events
from .sample_stream import COLUMNS, SamplePlan, _preprocess, index_samples, read_numbers
from .specs import WindowSpec, series_input
from .stream import Moments, add_group_rows, group_normalizer
from .windows import Windows, unit_keys


@dataclass
class TimeJoinedPlan:
    """What the driver works out once to stream events joined by time with the other inputs.

    ``events`` is the anchor's plan (its index carries units and times); ``readers[name]`` reads
    input ``name`` from a catalog (a view of some units that have rows of it), as the in-memory run
    reads it; ``group_norm`` names the series inputs standardized per row group.
    """

    root: str
    anchor: str
    names: list[str]
    events: SamplePlan
    readers: dict[str, Callable]
    sources: dict  # input name → (dataset, spec, columns or None), every input but the anchor
    has: dict[str, set]  # input name → the units with rows of it in the role's domains
    group_norm: list[str]
    tolerance: int  # µs
    specs: dict = field(default_factory=dict)  # input name → its model-input spec (after fit)
    shapes: dict = field(default_factory=dict)  # input name → (sample shape, dtype)
    normalizers: dict = field(default_factory=dict)  # series input → GroupNormalizer
    tabular: dict = field(default_factory=dict)  # tabular input → {"mean", "std"}
    series: dict = field(default_factory=dict)  # series input → (channels, length, channel names)

    normalizer = None  # each input has its own statistics (:meth:`input_spec`)

    @property
    def multi_label(self) -> bool:
        return self.events.index.multi_label

    @property
    def classes(self) -> list[str]:
        return self.events.index.classes

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation event numbers, as the in-memory run splits its joined samples."""
        return self.events.split(val_fraction, seed)

    def input_spec(self) -> InputSpec:
        """Each input's model-input spec, with the statistics fitted over the training events."""
        return InputSpec({name: self.specs[name] for name in self.names})

    def transforms(self) -> dict:
        """Input name → what standardizes that input's in-memory samples as the stream's are."""
        out = {name: partial(replace, **stats) for name, stats in self.tabular.items()}
        out.update({name: norm.transform for name, norm in self.normalizers.items()})
        return out

    def groups(self, numbers: np.ndarray, per_group: int) -> list[np.ndarray]:
        """``numbers`` in runs of about ``per_group`` events, sorted by unit then number, a unit's
        events never split across runs."""
        numbers = np.asarray(numbers, np.int64)
        units = self.events.index.units[numbers].astype(str)
        numbers = numbers[np.lexsort((numbers, units))]
        units = self.events.index.units[numbers]
        out, lo = [], 0
        for hi in range(1, len(numbers) + 1):
            if hi == len(numbers) or (units[hi] != units[hi - 1] and hi - lo >= per_group):
                out.append(numbers[lo:hi])
                lo = hi
        return out

    def fit(self, numbers: np.ndarray) -> None:
        """Fits every input's statistics over the samples the training events ``numbers`` join,
        reading a few units at a time; sets each input's spec."""
        index = self.events.index
        self.specs[self.anchor] = self.events.spec
        moments: dict[str, dict] = {name: {} for name in self.names if name != self.anchor}
        fitted = {name for name in moments if self.sources[name][2] or name in self.group_norm}
        for group in self.groups(numbers, self.events.samples_per_task):
            units = index.units[group]
            for name in moments:
                if name not in fitted and name in self.shapes:  # nothing more to learn from its samples
                    continue
                part = self.read(name, units)
                if part is None:
                    continue
                self._describe(name, part)
                rows = reach_events(name, part, units, index.times[group], self.tolerance)
                rows = rows[rows >= 0]
                if not len(rows) or name not in fitted:
                    continue
                if isinstance(part, RowValues):
                    moments[name].setdefault(None, Moments()).add(part._raw(rows).astype(np.float64))
                else:
                    _add_rows(moments[name], part.subset(rows))
        for name, stats in moments.items():
            if name not in self.shapes and self.has[name]:
                # only machines without training events recorded it: its shape from one of them (as
                # in memory); training samples mark it absent, and statistics it needs are refused below
                self._describe(name, self.read(name, np.array([min(self.has[name])])))
            if name not in self.shapes:
                raise DataError(f"input {name!r}: no machine of the run has samples of it", key=name)
            if isinstance(self.specs.get(name), TabularInput):
                if None not in stats:
                    raise DataError(f"input {name!r}: no training event joins a row of it to standardize with; "
                                    "check data.join.tolerance_s", key=name)
                mean, std = stats[None].mean, np.maximum(stats[None].std, 1e-6)
                self.tabular[name] = {"mean": mean, "std": std}
                self.specs[name] = TabularInput(self.specs[name].columns, tuple(mean.tolist()), tuple(std.tolist()))
            elif name in self.group_norm:
                if None not in stats:
                    raise DataError(f"input {name!r}: no source training sample has this input, so its normalization "
                                    "cannot be fitted; check data.join.tolerance_s and the input's plants, assets "
                                    "and times", key=name)
                self.normalizers[name] = group_normalizer(stats)
            if name in self.series:
                channels, length, signals = self.series[name]
                norm = self.normalizers.get(name)
                self.specs[name] = series_input(self.sources[name][1], channels, length,
                                                norm.to_dict() if norm else None, signals=signals)

    def read(self, name: str, units: np.ndarray):
        """Input ``name``'s samples recorded by ``units`` (read through a catalog view of those that
        have rows of it), or None where none has."""
        mine = self.has[name].intersection(units.tolist())
        return self.readers[name](Catalog(self.root).of_units(mine)) if mine else None

    def _describe(self, name: str, part) -> None:
        """Records input ``name``'s sample shape, and its spec before statistics, from a part read of it."""
        if name in self.shapes or not len(part):
            return
        self.shapes[name] = (tuple(part.sample_shape), getattr(part, "dtype", np.float32))
        if isinstance(part, RowValues):
            self.specs[name] = TabularInput(tuple(part.channels))
        elif isinstance(part, Windows):
            self.series[name] = (part.n_channels, part.length, part.channels)
        else:
            self.specs[name] = part.spec

    def dataset_of(self, numbers: np.ndarray, *, seed: int, shuffle: bool, num_cpus: float = 1):
        """A lazy Ray Dataset of the joined samples of events ``numbers`` (read tasks run when it is iterated)."""
        import ray.data

        items = [{"task": i, "numbers": g.tolist()} for i, g in enumerate(self.groups(numbers, self.events.samples_per_task))]
        return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            _cut_time_joined, batch_size=1, num_cpus=num_cpus, fn_kwargs={"plan": self, "seed": seed, "shuffle": shuffle})

    def stream_of(self, numbers: np.ndarray, source, shuffle_buffer: int = 1024):
        """``source`` (the Ray Dataset of :meth:`dataset_of`, or a worker's shard of it) as joined samples."""
        from .joined_stream import JoinedStream

        stream = JoinedStream(source, n=len(numbers), plan=self, shuffle_buffer=shuffle_buffer)
        stream.multi_label, stream.classes = self.multi_label, self.classes
        return stream


def _add_rows(stats: dict, windows: Windows) -> None:
    """Adds the rows ``windows`` read to per-row-group moments, as :meth:`GroupNormalizer.fit`
    counts them (each row once)."""
    rows = windows.covered_rows()
    add_group_rows(stats, windows.values[:, rows].astype(np.float64).T,
                   windows.row_groups[rows] if windows.row_groups is not None else None)


def _units_with_rows(catalog: Catalog, dataset: str, spec, domains: list[str] | None) -> set[str]:
    """The units (plant/asset) with rows of ``dataset`` in ``domains`` (every split), from one pass
    over its key and domain columns."""
    column = spec.domain if isinstance(spec, WindowSpec) else "plant"
    table = catalog.read(dataset, columns=list(dict.fromkeys(["plant", "asset", column])))
    if domains:
        table = table.filter(pc.is_in(pc.cast(table.column(column), pa.string()), pa.array([str(d) for d in domains])))
    return set(pc.unique(unit_keys(table)).to_pylist())


def plan_time_joined(catalog: Catalog, *, anchor: str, names: list[str], anchor_spec, anchor_dataset: str,
                     sources: dict, readers: dict[str, Callable], group_norm: list[str], tolerance_s: float,
                     split: str | None, domains: list[str] | None, classes: list[str],
                     samples_per_task: int = 256) -> TimeJoinedPlan:
    """Indexes the anchor's events (with their units and times) in the in-memory read order;
    ``readers`` read every other input (``sources``: name → dataset, spec, columns) from a catalog
    (a view of some units)."""
    index = index_samples(catalog, anchor_dataset, anchor_spec, split=split, domains=domains, classes=classes,
                          events=True)
    event_times(anchor, index)  # every event has a time, or a DataError names the first without one
    events = SamplePlan(str(catalog.root), anchor_dataset, anchor_spec, index, samples_per_task)
    has = {name: _units_with_rows(catalog, dataset, spec, domains) for name, (dataset, spec, _) in sources.items()}
    return TimeJoinedPlan(str(catalog.root), anchor, list(names), events, dict(readers), dict(sources), has,
                          list(group_norm), int(round(tolerance_s * 1e6)))


def _cut_time_joined(batch: dict, *, plan: TimeJoinedPlan, seed: int, shuffle: bool) -> Iterator[dict]:
    """Ray Data map: one read task's events → blocks of joined samples
    ``{"x_<input>", "present", "y", "domain", "number"}`` (zeros where an input is absent; ``number``:
    the event's place in the anchor's read order)."""
    numbers, task = np.sort(np.asarray(batch["numbers"][0], np.int64)), int(batch["task"][0])
    index, spec = plan.events.index, plan.events.spec
    values = read_numbers(index.files, index.file_of, index.row_of, numbers,
                          [COLUMNS[spec.modality][0]]).column(0).to_pylist()
    units, times = index.units[numbers], index.times[numbers]
    transforms = plan.transforms()
    x = {plan.anchor: np.asarray(_preprocess(spec)(values))}
    present = {plan.anchor: np.ones(len(numbers), bool)}
    for name in plan.names:
        if name == plan.anchor:
            continue
        shape, dtype = plan.shapes[name]
        x[name] = np.zeros((len(numbers), *shape), dtype)
        part = plan.read(name, units)
        rows = reach_events(name, part, units, times, plan.tolerance) if part is not None else np.full(len(numbers), -1)
        present[name] = rows >= 0
        if present[name].any():
            standardize = transforms.get(name)
            x[name][present[name]] = (standardize(part) if standardize else part).get(rows[present[name]])
    order = np.random.default_rng([seed, task]).permutation(len(numbers)) if shuffle else np.arange(len(numbers))
    for lo in range(0, len(order), plan.events.block):
        idx = order[lo:lo + plan.events.block]
        block = {f"x_{name}": x[name][idx] for name in plan.names}
        block[PRESENT] = np.stack([present[name][idx] for name in plan.names], axis=1)
        yield {**block, "y": index.targets[numbers[idx]], "domain": index.domains[numbers[idx]], "number": numbers[idx]}


__all__ = ["TimeJoinedPlan", "plan_time_joined"]
