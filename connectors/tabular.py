"""Generic historian exports (CSV or Parquet) with a column mapping.

Two layouts:

* ``long`` (one value per row: time, asset, signal, value[, quality]) → a ``timeseries`` dataset;
* ``wide`` (one row per time step: time, asset, one column per signal[, labels]) → a ``runs`` dataset.

``src`` may be one file or a folder of files; each file is one part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.errors import DataError, TransferlineError, shorten

from ._common import digest, parse_times
from ._run_table import RunTable, read_run_table


@dataclass
class ColumnMapping:
    """Which source columns hold what. Unset ids fall back to constants (``plant``, ``asset``)."""

    layout: str = "wide"
    time_col: str = "time"
    asset_col: str | None = None
    asset: str = "asset"
    plant_col: str | None = None
    plant: str = "default"
    signal_col: str = "signal"  # long layout
    value_col: str = "value"  # long layout
    quality_col: str | None = None  # long layout
    value_cols: list[str] = field(default_factory=list)  # wide layout; empty = every other numeric column
    label_cols: list[str] = field(default_factory=list)  # wide layout
    split_col: str | None = None
    split: str = "all"
    run_table: str | None = None  # wide layout: a CSV/Parquet of set-points and outcomes, one row per asset (run)
    run_key: str | None = None  # its column holding the asset id (default: asset_col, else "asset")
    setpoint_cols: list[str] | None = None  # run table columns; default: its numeric columns
    outcome_cols: list[str] | None = None  # run table columns; default: the others

    def __post_init__(self) -> None:
        if self.layout not in ("wide", "long"):
            raise TransferlineError(f"--layout: 'wide' or 'long', not {shorten(self.layout)}")
        if self.run_table and self.layout != "wide":
            raise TransferlineError("--run-table applies to --layout wide (one run per asset)")


def read_csv(src: str | Path, **mapping) -> IngestPlan:
    """Plans the ingest of CSV file(s) under a :class:`ColumnMapping` given as keyword arguments."""
    return _plan(Path(src), _mapping(mapping, "csv"), "csv", (".csv", ".csv.gz", ".txt"))


def read_parquet(src: str | Path, **mapping) -> IngestPlan:
    """Plans the ingest of Parquet file(s) under a :class:`ColumnMapping` given as keyword arguments."""
    return _plan(Path(src), _mapping(mapping, "parquet"), "parquet", (".parquet", ".pq"))


def _mapping(options: dict, fmt: str) -> ColumnMapping:
    unknown = sorted(set(options) - set(ColumnMapping.__dataclass_fields__))
    if unknown:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in unknown)
        raise TransferlineError(f"option {flags} does not apply to format {fmt!r}")
    return ColumnMapping(**options)


def _plan(src: Path, mapping: ColumnMapping, fmt: str, suffixes: tuple[str, ...]) -> IngestPlan:
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))
    elif src.is_file():
        files = [src]
    else:
        raise DataError("no such file or folder", file=str(src))
    if not files:
        raise DataError(f"no {'/'.join(suffixes)} files found", file=str(src))
    opts = vars(mapping)
    table = read_run_table(mapping.run_table, mapping.run_key or mapping.asset_col or "asset",
                           setpoints=mapping.setpoint_cols, outcomes=mapping.outcome_cols) if mapping.run_table else None
    extra = [Path(mapping.run_table)] if table else []
    parts = [Part(key=str(p.relative_to(src)) if src.is_dir() else p.name, digest=digest([p, *extra], reader=fmt, **opts),
                  file=str(p), first_line=2 if fmt == "csv" else None,
                  load=lambda p=p: _load(p, mapping, fmt, table)) for p in files]
    kind = "timeseries" if mapping.layout == "long" else "runs"
    roles = {"id": ["plant", "asset"], "time": ["step"], "sensors": list(mapping.value_cols),
             "labels": list(mapping.label_cols)} if kind == "runs" else {"id": ["plant", "asset", "signal"]}
    if table:
        roles.update(table.roles)
    return IngestPlan(kind=kind, reader=fmt, source=str(src), parts=parts, roles=roles, domain_columns=["plant"],
                      extra={"mapping": opts})


def _read_frame(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pandas()
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
            raise DataError(f"cannot read Parquet ({exc})", file=str(path)) from None
    try:
        return pd.read_csv(path, engine="c", on_bad_lines="error", dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise DataError(f"malformed CSV row ({exc})", file=str(path), row=int(line.group(1)) if line else None) from None
    except (UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read CSV ({exc})", file=str(path)) from None


def _load(path: Path, mapping: ColumnMapping, fmt: str, run_table: RunTable | None = None) -> pa.Table:
    frame = _read_frame(path, fmt)
    first = 2 if fmt == "csv" else 1
    needed = [mapping.time_col, mapping.asset_col, mapping.plant_col, mapping.split_col]
    if mapping.layout == "long":
        needed += [mapping.signal_col, mapping.value_col, mapping.quality_col]
    else:
        needed += mapping.value_cols + mapping.label_cols
    for col in needed:
        if col is not None and col not in frame.columns:
            raise DataError(f"mapped column not in file (columns: {list(frame.columns)})", file=str(path), field=col)
    n = len(frame)
    ids = {
        "split": _text(frame, mapping.split_col, mapping.split, n, path, first),
        "plant": _text(frame, mapping.plant_col, mapping.plant, n, path, first),
        "asset": _text(frame, mapping.asset_col, mapping.asset, n, path, first),
    }
    if mapping.layout == "long":
        quality = (_numbers(frame, mapping.quality_col, path, first).astype(np.uint32) if mapping.quality_col
                   else np.zeros(n, np.uint32))
        return pa.table({**ids, "signal": _text(frame, mapping.signal_col, None, n, path, first),
                         "ts": _times(frame, mapping.time_col, path, first),
                         "value": _numbers(frame, mapping.value_col, path, first, finite=False),
                         "quality": pa.array(quality, pa.uint32())})
    skip = {mapping.time_col, mapping.asset_col, mapping.plant_col, mapping.split_col, *mapping.label_cols}
    value_cols = mapping.value_cols or [c for c in frame.columns if c not in skip and _is_numeric(frame[c])]
    if not value_cols:
        raise DataError("no numeric value columns found; name them with value_cols", file=str(path))
    step, ts = _steps(frame, mapping.time_col, ids["plant"], ids["asset"], path, first)
    table = {**ids, "step": step}
    if ts is not None:
        table["ts"] = ts
    table.update({c: _numbers(frame, c, path, first) for c in value_cols})
    table.update({c: _text(frame, c, None, n, path, first) for c in mapping.label_cols})
    if run_table is not None:
        clash = sorted(set(run_table.setpoints + run_table.outcomes + run_table.attributes) & set(table))
        if clash:
            raise DataError(f"the run table's column {clash[0]!r} is also a column of this file; rename one",
                            file=str(path), field=clash[0])
        table.update(run_table.join(ids["asset"].to_numpy(zero_copy_only=False), where=path.name))
    return pa.table(table)


def _is_numeric(series: pd.Series) -> bool:
    """Whether an unmapped column holds a signal: most of its values read as numbers.

    # NOTE: a signal with a few bad values (text, blanks) is still a signal, wherever the bad
    # values are, and :func:`_numbers` then names the first one; only a column that is mostly
    # text (ids, comments) is left out.
    """
    if pd.api.types.is_numeric_dtype(series):
        return True
    if not len(series):
        return False
    parsed = pd.to_numeric(series, errors="coerce")
    return bool(parsed.notna().mean() > 0.5)


def _numbers(frame: pd.DataFrame, col: str, path: Path, first: int, finite: bool = True) -> np.ndarray:
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) if not finite else ~np.isfinite(values)
    if not finite:  # a NaN spelled out in the source is a value; an unparsable one is not
        bad &= raw.astype(str).str.lower().str.strip() != "nan"
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"not a finite number: {shorten(raw.iloc[row])}", file=str(path), row=row + first, field=col)
    return values


def _text(frame: pd.DataFrame, col: str | None, default: str | None, n: int, path: Path, first: int) -> pa.Array:
    if col is None:
        return pa.array([default] * n, pa.string())
    values = frame[col].astype(str).str.strip()
    empty = (values == "") | frame[col].isna()
    if empty.any():
        raise DataError("empty value", file=str(path), row=int(np.flatnonzero(empty)[0]) + first, field=col)
    return pa.array(values.to_numpy(), pa.string())


def _times(frame: pd.DataFrame, col: str, path: Path, first: int) -> pa.Array:
    return parse_times(frame[col], file=str(path), field=col, rows=np.arange(len(frame)) + first)


def _steps(frame, col, plant, asset, path, first) -> tuple[pa.Array, pa.Array | None]:
    """Integer time → step as is; timestamps → step = order within each asset, plus a ``ts`` column."""
    numeric = pd.to_numeric(frame[col], errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        return pa.array(numeric.to_numpy().astype(np.int64)), None
    ts = _times(frame, col, path, first)
    keys = pd.DataFrame({"p": plant.to_numpy(zero_copy_only=False), "a": asset.to_numpy(zero_copy_only=False),
                         "t": ts.to_numpy(zero_copy_only=False)})
    step = keys.groupby(["p", "a"])["t"].rank(method="first").astype(np.int64) - 1
    return pa.array(step.to_numpy()), ts
