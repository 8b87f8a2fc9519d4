"""Helpers shared by the file connectors: content digests and line-precise parse errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from transferline.errors import DataError, shorten

READER_VERSION = 1


def digest(paths: Iterable[Path], **options) -> str:
    """sha256 over the bytes of ``paths`` (in order), the reader version and the reader options."""
    h = hashlib.sha256(json.dumps({"v": READER_VERSION, **options}, sort_keys=True, default=str).encode())
    for path in paths:
        h.update(Path(path).name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def require_dir(src: Path, what: str) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"expected a directory holding {what}", file=str(src))
    return src


def read_whitespace_table(path: Path, names: list[str]) -> pd.DataFrame:
    """Reads a headerless whitespace-separated numeric file; errors name the line and column.

    The fast pandas path handles good files; on failure a line-by-line scan finds the exact line.
    """
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64, engine="c")
    except (ValueError, pd.errors.ParserError):
        _locate_bad_line(path, names)
        raise
    if frame.shape[1] != len(names):
        _locate_bad_line(path, names)
        raise DataError(f"expected {len(names)} columns, found {frame.shape[1]}", file=str(path))
    frame.columns = names
    values = frame.to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        _locate_bad_line(path, names)  # a short row also reads as NaN: name it as such
        row, col = np.argwhere(bad)[0]
        raise DataError("NaN or infinite value", file=str(path), row=int(row) + 1, field=names[col])
    return frame


def _locate_bad_line(path: Path, names: list[str]) -> None:
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != len(names):
                raise DataError(f"expected {len(names)} values, found {len(fields)}", file=str(path), row=lineno)
            for name, text in zip(names, fields):
                try:
                    float(text)
                except ValueError:
                    raise DataError(f"not a number: {shorten(text)}", file=str(path), row=lineno, field=name) from None


def constant(value, n: int, typ):
    """An Arrow array of ``n`` copies of ``value``."""
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, typ), n) if n else pa.array([], typ)


def manifest_rows(src: Path, manifest: Path, what: str) -> tuple[Path, list[str], list[tuple[int, dict, Path]]]:
    """A CSV manifest listing files under ``src`` (columns ``path`` and ``label`` at least):
    ``(manifest path, columns, [(line, row, file)])``; a missing column, file or label is an error
    naming the line and field."""
    import csv

    manifest = manifest if manifest.is_absolute() else src / manifest
    if not manifest.is_file():
        raise DataError("manifest not found", file=str(manifest))
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        for col in ("path", "label"):
            if col not in columns:
                raise DataError(f"manifest needs column {col!r} (has {columns})", file=str(manifest), field=col)
        rows = []
        for lineno, row in enumerate(reader, start=2):
            path = src / (row["path"] or "")
            if not row["path"] or not path.is_file():
                raise DataError(f"{what} {row['path']!r} not found under {src}", file=str(manifest), row=lineno,
                                field="path")
            if not row["label"]:
                raise DataError("empty label", file=str(manifest), row=lineno, field="label")
            rows.append((lineno, row, path))
    return manifest, columns, rows


def parse_times(values, *, file: str, field: str, rows):
    """Text timestamps (ISO 8601 and the like; UTC unless they say otherwise) → a ``ts`` column
    (µs, UTC); the first that is not one is a DataError naming ``file``, its row (``rows``: each
    value's row number) and ``field``."""
    import pyarrow as pa

    from transferline.catalog.schemas import TIMESTAMP

    values = pd.Series(list(values), dtype=object)
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"not a timestamp: {shorten(values.iloc[i])}", file=file, row=int(rows[i]), field=field)
    return pa.array(parsed.dt.as_unit("us"), TIMESTAMP)
