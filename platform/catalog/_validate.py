"""Checks a table against its kind before anything reaches the catalog."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from .schemas import Kind

# NOTE: OPC UA StatusCode severity lives in the top two bits; Bad = 0b10.
_BAD_SEVERITY = 0x80000000


def _allowed_extra(typ: pa.DataType) -> bool:
    return (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)
            or pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_timestamp(typ))


def validate_table(table: pa.Table, kind: Kind, *, file: str, first_line: int | None = None,
                   nullable: frozenset[str] = frozenset()) -> pa.Table:
    """Returns ``table`` with columns in canonical order, or raises DataError naming file, row and field.

    Args:
        table: the rows one source part produced.
        kind: the dataset kind the rows must match.
        file: the source file, for error messages.
        first_line: the source line of the table's first row, when rows map to lines; otherwise
            rows are reported 1-based in the order the reader produced them.
        nullable: numeric columns where a value may be missing (null; never NaN), e.g. the outcome
            of an inspection that never happened.
    """
    names = set(table.column_names)
    for fld in kind.schema:
        if fld.name not in names:
            raise DataError(f"missing required column for kind {kind.name!r}", file=file, field=fld.name)
        actual = table.schema.field(fld.name).type
        if actual != fld.type:
            raise DataError(f"column has type {actual}, kind {kind.name!r} needs {fld.type}", file=file, field=fld.name)
        if table.column(fld.name).null_count and fld.name in ("split", "plant", "asset"):
            row = _first_true(table.column(fld.name).is_null())
            raise DataError("empty value", file=file, row=_line(row, first_line), field=fld.name)
    for fld in kind.optional:
        if fld.name in names and table.schema.field(fld.name).type != fld.type:
            raise DataError(f"column has type {table.schema.field(fld.name).type}, kind {kind.name!r} needs "
                            f"{fld.type}", file=file, field=fld.name)
    if kind.name == "text" and "spans" in names:
        _check_spans(table, file, first_line)
    optional = [n for n in kind.optional.names if n in names]
    extras = [n for n in table.column_names if n not in kind.schema.names and n not in optional]
    if extras and not kind.extra_columns:
        raise DataError(f"kind {kind.name!r} takes no extra columns: {', '.join(extras)}", file=file)
    for name in extras:
        if not _allowed_extra(table.schema.field(name).type):
            raise DataError(f"extra column type {table.schema.field(name).type} is not numeric, bool, string or timestamp",
                            file=file, field=name)
    for name in table.column_names:
        col = table.column(name)
        if not pa.types.is_floating(col.type) and not (pa.types.is_list(col.type) and pa.types.is_floating(col.type.value_type)):
            continue
        bad = _nonfinite_rows(col)
        if name in nullable:
            bad &= ~col.is_null().to_numpy(zero_copy_only=False)
        if kind.name == "timeseries" and name == "value":
            quality = table.column("quality").to_numpy()
            bad = bad & ((quality & _BAD_SEVERITY) == 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError("missing, NaN or infinite value where a finite number is required",
                            file=file, row=_line(row, first_line), field=name)
    return table.select(kind.schema.names + optional + extras)


def _check_spans(table: pa.Table, file, first_line) -> None:
    """Every entity span lies inside its text, with a label and start < end."""
    for row, (text, spans) in enumerate(zip(table.column("text").to_pylist(), table.column("spans").to_pylist())):
        for span in spans or []:
            if not span["label"] or span["start"] is None or span["end"] is None or \
                    not 0 <= span["start"] < span["end"] <= len(text or ""):
                raise DataError(f"entity span {span} lies outside its text of {len(text or '')} characters or has "
                                "no label", file=file, row=_line(row, first_line), field="spans")


def _nonfinite_rows(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_list(col.type):
        flat = pc.list_flatten(col)
        parents = pc.list_parent_indices(col).to_numpy()
        bad_values = ~np.isfinite(flat.to_numpy(zero_copy_only=False))
        rows = np.zeros(len(col), dtype=bool)
        rows[np.unique(parents[bad_values])] = True
        return rows
    values = col.to_numpy(zero_copy_only=False)  # nulls come back as NaN and are refused too
    return ~np.isfinite(values.astype(np.float64, copy=False))


def _first_true(mask: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _line(row: int, first_line: int | None) -> int:
    return row + first_line if first_line is not None else row + 1
