"""Per-run set-points and outcomes (one row per run or experiment), joined onto a run's signal rows.

A process engineer's table of trials: which set-points each run used (numbers) and what came of
it (``yes``/``no``, ``worn``, a measured value). Every row of a run's signals gets that run's
values as constant columns; the dataset manifest records them under the roles ``setpoints``,
``outcomes`` and ``attributes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from transferline.errors import DataError, shorten



@dataclass
class RunTable:
    """Rows of a run table keyed by run; ``setpoints`` numeric, ``outcomes`` and ``attributes`` text
    or numbers (empty cells are missing values, e.g. an inspection that never happened)."""

    path: str
    key: str
    setpoints: list[str]
    outcomes: list[str]
    attributes: list[str]
    rows: dict[str, dict]
    lines: dict[str, int]  # run → line in the file (for errors)

    @property
    def roles(self) -> dict[str, list[str]]:
        return {"setpoints": self.setpoints, "outcomes": self.outcomes, "attributes": self.attributes}

    def join(self, runs, *, where: str) -> dict[str, pa.Array]:
        """Columns holding each row's run values, for rows whose run ids are ``runs``; a run the
        table lacks is an error naming ``where``."""
        runs = [str(r) for r in runs]
        unknown = sorted(set(runs) - set(self.rows))
        if unknown:
            raise DataError(f"the run table has no row for run {unknown[0]!r} (its {self.key!r} values: "
                            f"{', '.join(list(self.rows)[:8])}{' ...' if len(self.rows) > 8 else ''})",
                            file=self.path, key=where)
        out = {c: pa.array([self.rows[r][c] for r in runs], pa.float64()) for c in self.setpoints}
        for c in self.outcomes + self.attributes:
            values = [self.rows[r][c] for r in runs]
            numeric = any(isinstance(v, float) for v in values)
            out[c] = pa.array([None if v is None or (numeric and np.isnan(v)) else v for v in values],
                              pa.float64() if numeric else pa.string())
        return out


def read_run_table(path: str | Path, key: str, *, setpoints: list[str] | None = None,
                   outcomes: list[str] | None = None, attributes: list[str] | None = None) -> RunTable:
    """Reads a CSV or Parquet run table. ``setpoints`` default to every numeric column but ``key``,
    ``outcomes`` to every other column; ``attributes`` are kept but neither. Errors name the file, the
    line and the column."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such run table (set-points and outcomes per run)", file=str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame, first_line = pd.read_parquet(path), 1
        else:
            frame, first_line = pd.read_csv(path, dtype=str, keep_default_na=False), 2
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"unreadable run table ({type(exc).__name__}: {shorten(str(exc), 120)})", file=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    attributes = list(attributes or [])
    for name in [key, *(setpoints or []), *(outcomes or []), *attributes]:
        if name not in frame.columns:
            raise DataError(f"no column {name!r} (columns: {', '.join(frame.columns)})", file=str(path), field=name)
    text = frame.astype(str).apply(lambda col: col.str.strip())
    numeric = [c for c in frame.columns if c != key and c not in attributes and _is_numeric(text[c])]
    setpoints = list(setpoints) if setpoints is not None else numeric
    taken = {key, *setpoints, *attributes}
    outcomes = list(outcomes) if outcomes is not None else [c for c in frame.columns if c not in taken]
    if not setpoints:
        raise DataError("no numeric set-point column (pass the set-point columns by name)", file=str(path))
    rows, lines = {}, {}
    for i in range(len(frame)):
        line = i + first_line
        run = text[key].iloc[i]
        if not run:
            raise DataError("empty run key", file=str(path), row=line, field=key)
        if run in rows:
            raise DataError(f"run {run!r} appears twice (first on line {lines[run]})", file=str(path), row=line, field=key)
        row = {}
        for c in setpoints:
            row[c] = _number(text[c].iloc[i], path, line, c, required=True)
        for c in outcomes + attributes:
            cell = text[c].iloc[i]
            row[c] = (_number(cell, path, line, c) if c in numeric else cell) if cell not in ("", "nan", "None") \
                else (float("nan") if c in numeric else None)
        rows[run], lines[run] = row, line
    if not rows:
        raise DataError("the run table has no rows", file=str(path))
    return RunTable(str(path), key, setpoints, outcomes, attributes, rows, lines)


def _is_numeric(col: pd.Series) -> bool:
    values = col[col != ""]
    return len(values) > 0 and pd.to_numeric(values, errors="coerce").notna().all()


def _number(text: str, path: Path, line: int, field: str, required: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise DataError(f"{'missing set-point' if required and not text else 'not a finite number'}: {shorten(text)}",
                        file=str(path), row=line, field=field)
    return value
