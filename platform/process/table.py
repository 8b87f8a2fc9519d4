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
    """One predicted outcome: ``binary`` (probability of ``positive``) or ``numeric`` (a value)."""

    name: str
    kind: str
    positive: str | None = None
    negative: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class ProcessData:
    """``X`` ``[runs, setpoints]``; ``Y`` ``[runs, outcomes]`` (binary 0/1, numeric values, NaN missing)."""

    dataset: str
    runs: list[str]
    setpoints: list[str]
    outcomes: list[Outcome]
    X: np.ndarray
    Y: np.ndarray
    extra: dict = field(default_factory=dict)

    def ranges(self) -> dict[str, list[float]]:
        return {name: [float(self.X[:, i].min()), float(self.X[:, i].max())] for i, name in enumerate(self.setpoints)}

    def index(self, outcome: str) -> int:
        names = [o.name for o in self.outcomes]
        if outcome not in names:
            raise ValueError(f"no outcome {outcome!r} in dataset {self.dataset!r} (outcomes: {', '.join(names)})")
        return names.index(outcome)


def load_process_data(catalog: Catalog, dataset: str, *, setpoints: list[str] | None = None,
                      outcomes: list[str] | None = None, positive: dict[str, str] | None = None) -> ProcessData:
    """The runs of ``dataset`` with their set-points and outcomes (the manifest's roles unless given)."""
    manifest = catalog.manifest(dataset)
    roles = manifest.roles or {}
    setpoints = list(setpoints or roles.get("setpoints") or [])
    outcomes = list(outcomes or roles.get("outcomes") or [])
    if not setpoints or not outcomes:
        raise ValueError(f"dataset {dataset!r} records no set-points and outcomes per run; ingest them with the run "
                         "table (cnc-mill: train.csv beside data/ or --setpoints FILE; csv: --run-table FILE "
                         "--run-key COLUMN) or name them with --setpoints/--outcomes")
    names = catalog.schema(dataset).names
    for col in [*setpoints, *outcomes]:
        if col not in names:
            raise ValueError(f"dataset {dataset!r} has no column {col!r}")
    frame = catalog.read(dataset, columns=["asset", *setpoints, *outcomes]).to_pandas()
    varying = frame.groupby("asset", sort=True)[[*setpoints, *outcomes]].nunique(dropna=False).max()
    if (varying > 1).any():
        col = varying.index[int(np.argmax(varying.to_numpy() > 1))]
        raise ValueError(f"dataset {dataset!r}: column {col!r} changes within a run; set-points and outcomes must be "
                         "one value per run")
    runs = frame.groupby("asset", sort=True).first()
    X = runs[setpoints].to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        bad = runs.index[~np.isfinite(X).all(axis=1)][0]
        raise ValueError(f"dataset {dataset!r}: run {bad!r} lacks a set-point value")
    described, columns = [], []
    for name in outcomes:
        col = runs[name]
        if col.dtype.kind in "fiu":
            described.append(Outcome(name, "numeric"))
            columns.append(col.to_numpy(dtype=np.float64))
            continue
        values = sorted({str(v) for v in col.dropna()})
        pos = (positive or {}).get(name) or _positive(values)
        if len(values) > 2 or pos not in values + [None]:
            raise ValueError(f"outcome {name!r} takes {len(values)} values ({', '.join(values[:6])}); a binary outcome "
                             f"takes two{f' and {pos!r} is not one of them' if pos not in values else ''}")
        neg = next((v for v in values if v != pos), None)
        described.append(Outcome(name, "binary", pos, neg))
        columns.append(np.array([np.nan if v is None or v != v else float(str(v) == pos) for v in col]))
    return ProcessData(dataset, [str(r) for r in runs.index], setpoints, described, X, np.stack(columns, axis=1))


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
