"""Several inputs of one sample streamed through Ray Data, joined by key inside each read task.

A run of several series inputs (sensors of one machine, a process's set-points as a tabular
input) joins them by recording and position (:func:`~transferline.data.multimodal.join_samples`).
Streamed, the driver indexes every input (one pass over each one's key columns), takes the union
of their assets as the units to split and to deal into read tasks, and fits each input's
statistics over the training assets. Each read task reads its assets from every input's own
dataset, cuts and standardizes each input as the in-memory path does, joins them with the same
function, and yields blocks of ``{x_<input>, present, y, domain}``: a sample some input lacks
keeps the others, with that input marked absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pyarrow as pa

from ..catalog import Catalog
from .batch import Batch
from .inputs import PRESENT, InputSpec, TabularInput
from .multimodal import RowValues, join_samples
from .specs import series_input, table_windows
from .stream import AssetIndex, Moments, RayStream, StreamPlan, _read_assets, deal_tasks, fit_normalizer, plan_stream


@dataclass
class JoinedPlan:
    """What the driver works out once to stream the joined samples of several inputs.

    ``plans[name]`` is input ``name``'s own plan (dataset, spec, index, fitted normalizer);
    ``index`` holds the union of the series inputs' assets, each counted with the joined samples
    it makes; ``tabular[name]`` a tabular input's column statistics (``{"mean", "std"}``).
    """

    root: str
    plans: dict[str, StreamPlan]
    columns: dict[str, list[str]]  # the tabular inputs' columns
    index: AssetIndex
    rows_per_task: int = 100_000
    block_windows: int = 2048
    classes: list[str] | None = None
    tabular: dict[str, dict] | None = None

    @property
    def names(self) -> list[str]:
        return list(self.plans)

    @property
    def normalizer(self) -> None:
        """None: each input has its own statistics (:meth:`input_spec`)."""
        return None

    def n_windows(self, keys: list[str]) -> int:
        counts = dict(zip(self.index.keys, self.index.windows.tolist()))
        return int(sum(counts[k] for k in keys))

    def input_spec(self) -> InputSpec:
        """Each input's model-input spec, with the statistics fitted over the training assets."""
        specs = {}
        for name, plan in self.plans.items():
            if name in self.columns:
                stats = (self.tabular or {})[name]
                specs[name] = TabularInput(tuple(self.columns[name]), tuple(stats["mean"].tolist()),
                                           tuple(stats["std"].tolist()))
            else:
                norm = plan.normalizer.to_dict() if plan.normalizer else None
                specs[name] = series_input(plan.spec, len(plan.channel_names), plan.spec.length, norm,
                                           signals=plan.channel_names)
        return InputSpec(specs)

    def transforms(self) -> dict:
        """Input name → what standardizes that input's in-memory samples as the stream's are."""
        out = {name: partial(replace, **stats) for name, stats in (self.tabular or {}).items()}
        out.update({name: plan.normalizer.transform for name, plan in self.plans.items()
                    if name not in self.columns and plan.normalizer is not None})
        return out

    def fit(self, keys: list[str]) -> None:
        """Fits every input's statistics over the rows of ``keys`` (the training assets)."""
        self.tabular = {}
        for name, plan in self.plans.items():
            mine = sorted(set(keys) & set(plan.index.keys))
            if name in self.columns:
                self.tabular[name] = _fit_tabular(self.root, plan, mine)
            elif plan.spec.kind == "runs" and plan.spec.normalize == "group":
                plan.normalizer = fit_normalizer(Catalog(self.root), plan.dataset, plan.spec, split=plan.split,
                                                 domains=plan.domains, keys=mine)

    def dataset_of(self, keys: list[str], *, seed: int, shuffle: bool, num_cpus: float = 1):
        """A lazy Ray Dataset of the joined samples of ``keys`` (read tasks run when it is iterated)."""
        import ray.data

        tasks = deal_tasks(self.index, keys, self.rows_per_task)
        items = [{"task": i, "keys": "\n".join(k)} for i, k in enumerate(tasks)]
        return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            _cut_joined, batch_size=1, num_cpus=num_cpus, fn_kwargs={"plan": self, "seed": seed, "shuffle": shuffle})

    def stream_of(self, keys: list[str], source, shuffle_windows: int = 8192) -> "JoinedStream":
        """``source`` (the Ray Dataset of :meth:`dataset_of`, or a worker's shard of it) as joined samples."""
        return JoinedStream(source, n=self.n_windows(keys), plan=self, shuffle_buffer=shuffle_windows)


def plan_joined(catalog: Catalog, inputs: dict, *, split: str | None, domains: list[str] | None,
                classes: list[str], rows_per_task: int = 100_000) -> JoinedPlan:
    """Indexes each of ``inputs`` (name → ``(dataset, WindowSpec, columns or None)``) and counts the
    joined samples of every asset some series input has.

    # NOTE: an asset's joined samples are the union of its inputs' window ends, counted as each
    # input's windows ending every ``stride`` rows from ``length`` on: exact for recordings of
    # one row sequence per asset (runs; one waveform file per asset), as the catalog stores them.
    """
    plans, columns = {}, {}
    for name, (dataset, spec, cols) in inputs.items():
        try:
            plans[name] = plan_stream(catalog, dataset, spec, split=split, domains=domains, rows_per_task=rows_per_task)
        except ValueError as exc:
            raise ValueError(f"input {name!r} (dataset {dataset!r}): {exc}") from None
        plans[name].classes = classes
        if cols:
            columns[name] = list(cols)
    series = [name for name in plans if name not in columns]
    at = {name: {k: i for i, k in enumerate(plan.index.keys)} for name, plan in plans.items()}
    keys = sorted(set().union(*(at[name] for name in series)))
    rows, counts = [], []
    for key in keys:
        ends, n_rows = [], 0
        for name, plan in plans.items():
            if key not in at[name]:
                continue
            n_rows += int(plan.index.rows[at[name][key]])
            if name in series:
                n = int(plan.index.windows[at[name][key]])
                ends.append(plan.spec.length + plan.spec.stride * np.arange(n, dtype=np.int64))
        rows.append(n_rows)
        counts.append(len(np.unique(np.concatenate(ends))) if ends else 0)
    index = AssetIndex(keys, np.array(rows, np.int64), np.array(counts, np.int64),
                       sorted(set().union(*(plans[name].index.domain_names for name in series))), list(classes))
    return JoinedPlan(str(catalog.root), plans, columns, index, rows_per_task, classes=list(classes))


def _fit_tabular(root: str, plan: StreamPlan, keys: list[str]) -> dict[str, np.ndarray]:
    """Mean and standard deviation per column over the rows at the ends of the windows of ``keys``
    (the rows a tabular input joins), as :meth:`RowValues.statistics` computes them in memory:
    assets are read in groups of about ``rows_per_task`` rows (an asset's rows all in one group,
    so its windows are cut as a read task cuts them) and merged group by group."""
    moments = Moments()
    for group in deal_tasks(plan.index, keys, plan.rows_per_task):
        parts = list(_read_assets(Catalog(root), plan.dataset, plan.spec, plan.split, plan.domains, group))
        if parts:
            rows = RowValues.from_windows(table_windows(pa.concat_tables(parts), plan.spec,
                                                        classes=plan.classes or None))
            moments.add(rows._raw(np.arange(len(rows))).astype(np.float64))
    if not moments.n:
        raise ValueError(f"tabular input from {plan.dataset!r}: no rows in the training assets to standardize with")
    return {"mean": moments.mean, "std": np.maximum(moments.std, 1e-6)}


def _read_input(plan: JoinedPlan, name: str, keys: list[str], transforms: dict):
    """Input ``name``'s samples of ``keys``, standardized by ``transforms`` (:meth:`JoinedPlan.transforms`,
    what the in-memory run standardizes with); None where it has none of them."""
    own = plan.plans[name]
    has = set(own.index.keys)
    mine = [k for k in keys if k in has]
    parts = list(_read_assets(Catalog(plan.root), own.dataset, own.spec, own.split, own.domains, mine)) if mine else []
    if not parts:
        return None
    windows = table_windows(pa.concat_tables(parts), own.spec, classes=plan.classes or None, channels=own.channels)
    samples = RowValues.from_windows(windows) if name in plan.columns else windows
    standardize = transforms.get(name)
    return standardize(samples) if standardize else samples


def _sample_shape(plan: JoinedPlan, name: str) -> tuple[int, ...]:
    if name in plan.columns:
        return (len(plan.columns[name]),)
    own = plan.plans[name]
    return (len(own.channel_names), own.spec.length)


def _cut_joined(batch: dict, *, plan: JoinedPlan, seed: int, shuffle: bool) -> Iterator[dict]:
    """Ray Data map: one read task's assets → blocks of joined samples
    ``{"x_<input>", "present", "y", "domain"}`` (zeros where an input is absent)."""
    keys, task = str(batch["keys"][0]).split("\n"), int(batch["task"][0])
    transforms = plan.transforms()
    parts = {name: _read_input(plan, name, keys, transforms) for name in plan.names}
    read = {name: part for name, part in parts.items() if part is not None}
    if not any(name not in plan.columns for name in read):  # tabular rows make no samples of their own
        return
    joined = join_samples(read)
    to_global = np.array([plan.index.domain_names.index(n) for n in joined.domain_names], np.int64)
    order = np.random.default_rng([seed, task]).permutation(len(joined)) if shuffle else np.arange(len(joined))
    for i in range(0, len(order), plan.block_windows):
        idx = order[i:i + plan.block_windows]
        got = joined.get(idx)
        block = {f"x_{name}": got[name] if name in read else np.zeros((len(idx), *_sample_shape(plan, name)), np.float32)
                 for name in plan.names}
        block[PRESENT] = np.stack([got[PRESENT][:, joined.names.index(name)] if name in read
                                   else np.zeros(len(idx), bool) for name in plan.names], axis=1)
        yield {**block, "y": joined.labels[idx], "domain": to_global[joined.domains[idx]]}


class JoinedStream(RayStream):
    """Joined samples of several inputs streamed (see :class:`RayStream`): each batch carries every
    input and ``present``, as :meth:`JoinedSamples.batches` does in memory. ``plan`` holds the
    statistics its read tasks standardize with."""

    def __init__(self, source, *, n: int, plan: JoinedPlan, shuffle_buffer: int = 8192) -> None:
        super().__init__(source, n=n, shuffle_buffer=shuffle_buffer)
        self.plan, self.names = plan, plan.names

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> Iterator[Batch]:
        for b in self.source.iter_torch_batches(
                batch_size=batch_size, drop_last=drop_last, device="cpu",
                local_shuffle_buffer_size=self.shuffle_buffer if shuffle else None,
                local_shuffle_seed=seed if shuffle else None):
            inputs = {name: b[f"x_{name}"] for name in self.names}
            inputs[PRESENT] = b[PRESENT]
            yield Batch(inputs, b["y"], b["domain"], present=inputs[PRESENT])

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Every input (and ``present``) of the first ``n`` samples of a pass (``rng`` unused)."""
        return {k: v.numpy() for k, v in next(self.batches(n)).inputs.items()}


__all__ = ["JoinedPlan", "JoinedStream", "plan_joined"]
