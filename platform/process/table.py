"""One row per run: the set-points a run used and what came of it, read from a catalog dataset.

A ``runs`` dataset whose manifest has the roles ``setpoints`` and ``outcomes`` (the ``cnc-mill``
reader with its ``train.csv``, or ``ingest csv --run-table``) holds each run's values as constant
columns beside its signals; this view folds them back to one row per run. Outcomes with two text
values become binary (1 = the ``positive`` value), numeric outcomes stay numbers; a missing cell
(an inspection that never happened) is NaN and is left out of that outcome's loss and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..catalog import Catalog

_YES = ("yes", "true", "pass", "passed", "ok", "good", "1")


@dataclass(frozen=True)
class Outcome:
    """A per-run column as a number: ``binary`` (1 where it reads ``positive``) or ``numeric``.
    Describes outcomes (what is predicted) and context inputs alike."""

    name: str
    kind: str
    positive: str | None = None
    negative: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class ProcessData:
    """``X`` ``[runs, setpoints + context]``; ``Y`` ``[runs, outcomes]`` (binary 0/1, numeric values,
    NaN missing). ``context``: known conditions of a run that are not chosen by optimization (a new
    or a worn tool, a material), encoded like outcomes and given as inputs beside the set-points."""

    dataset: str
    runs: list[str]
    setpoints: list[str]
    outcomes: list[Outcome]
    X: np.ndarray
    Y: np.ndarray
    context: list[Outcome] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return self.setpoints + [c.name for c in self.context]

    def ranges(self) -> dict[str, list[float]]:
        return {name: [float(self.X[:, i].min()), float(self.X[:, i].max())] for i, name in enumerate(self.inputs)}

    def index(self, outcome: str) -> int:
        names = [o.name for o in self.outcomes]
        if outcome not in names:
            raise ValueError(f"no outcome {outcome!r} in dataset {self.dataset!r} (outcomes: {', '.join(names)})")
        return names.index(outcome)


def load_process_data(catalog: Catalog, dataset: str, *, setpoints: list[str] | None = None,
                      outcomes: list[str] | None = None, positive: dict[str, str] | None = None,
                      context: list[str] | None = None) -> ProcessData:
    """The runs of ``dataset`` with their set-points and outcomes (the manifest's roles unless
    given); ``context`` columns (taken out of the outcomes if listed there) become inputs."""
    manifest = catalog.manifest(dataset)
    roles = manifest.roles or {}
    setpoints = list(setpoints or roles.get("setpoints") or [])
    context = list(context or [])
    outcomes = [o for o in (outcomes or roles.get("outcomes") or []) if o not in context]
    if not setpoints or not outcomes:
        raise ValueError(f"dataset {dataset!r} records no set-points and outcomes per run; ingest them with the run "
                         "table (cnc-mill: train.csv beside data/ or --setpoints FILE; csv: --run-table FILE "
                         "--run-key COLUMN) or name them with --setpoints/--outcomes")
    names = catalog.schema(dataset).names
    for col in [*setpoints, *outcomes, *context]:
        if col not in names:
            raise ValueError(f"dataset {dataset!r} has no column {col!r}")
    both = sorted(set(setpoints) & set(context))
    if both:
        raise ValueError(f"{both[0]!r} is named as a set-point and as context")
    columns = [*setpoints, *outcomes, *context]
    frame = catalog.read(dataset, columns=["asset", *columns]).to_pandas()
    varying = frame.groupby("asset", sort=True)[columns].nunique(dropna=False).max()
    if (varying > 1).any():
        col = varying.index[int(np.argmax(varying.to_numpy() > 1))]
        raise ValueError(f"dataset {dataset!r}: column {col!r} changes within a run; set-points, context and outcomes "
                         "must be one value per run")
    runs = frame.groupby("asset", sort=True).first()
    X = runs[setpoints].to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        bad = runs.index[~np.isfinite(X).all(axis=1)][0]
        raise ValueError(f"dataset {dataset!r}: run {bad!r} lacks a set-point value")
    described, Y = _encode(runs, outcomes, positive)
    known, C = _encode(runs, context, positive)
    if np.isnan(C).any():
        name = known[int(np.argmax(np.isnan(C).any(axis=0)))].name
        raise ValueError(f"dataset {dataset!r}: context {name!r} is missing for some runs; context must be known")
    return ProcessData(dataset, [str(r) for r in runs.index], setpoints, described, np.column_stack([X, C]), Y, known)


def _encode(runs, names: list[str], positive: dict[str, str] | None) -> tuple[list[Outcome], np.ndarray]:
    """Columns as numbers: numeric ones as they are, two-valued text ones as 1 (positive) / 0."""
    described, columns = [], []
    for name in names:
        col = runs[name]
        if col.dtype.kind in "fiu":
            described.append(Outcome(name, "numeric"))
            columns.append(col.to_numpy(dtype=np.float64))
            continue
        values = sorted({str(v) for v in col.dropna()})
        pos = (positive or {}).get(name) or _positive(values)
        if len(values) > 2 or pos not in values + [None]:
            raise ValueError(f"{name!r} takes {len(values)} values ({', '.join(values[:6])}); a binary column "
                             f"takes two{f' and {pos!r} is not one of them' if pos not in values else ''}")
        neg = next((v for v in values if v != pos), None)
        described.append(Outcome(name, "binary", pos, neg))
        columns.append(np.array([np.nan if v is None or v != v else float(str(v) == pos) for v in col]))
    return described, np.stack(columns, axis=1) if columns else np.zeros((len(runs), 0))


def _positive(values: list[str]) -> str | None:
    """The value a binary outcome counts as 1: a yes-like one, else the one another value negates
    (``worn`` beside ``unworn``), else the later in sorted order."""
    for v in values:
        if v.lower() in _YES:
            return v
    for v in values:
        if any(o.lower() in (f"un{v.lower()}", f"not {v.lower()}", f"not_{v.lower()}", f"no {v.lower()}") for o in values):
            return v
    return values[-1] if values else None
