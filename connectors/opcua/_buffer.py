"""Received values, held in columns until they are written, deduplicated against durable watermarks.

A variable's *watermark* is the newest source timestamp already durable in the catalog; anything at
or before it is a duplicate. A variable's *limit* holds back live values while its outage window is
still being backfilled from history, so values reach the catalog in time order per variable and a
watermark never jumps over values not yet read.
"""

from __future__ import annotations

from array import array
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from transferline.catalog.schemas import KINDS

from ._mapping import Variable

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
NO_LIMIT = np.iinfo(np.int64).max
NO_WATERMARK = np.iinfo(np.int64).min


def to_micros(ts: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (naive datetimes are UTC, as asyncua gives them)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return (ts - EPOCH) // _ONE_US


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


class ValueBuffer:
    """Columns of (variable index, source time in µs, value, StatusCode) waiting to be written."""

    def __init__(self, variables: list[Variable], watermarks: dict[str, int] | None = None) -> None:
        self.variables = variables
        self.watermark = np.full(len(variables), NO_WATERMARK, dtype=np.int64)
        for i, v in enumerate(variables):
            if watermarks and v.name in watermarks:
                self.watermark[i] = watermarks[v.name]
        self.limit = np.full(len(variables), NO_LIMIT, dtype=np.int64)
        self._clear()
        self.received = 0
        self.duplicates = 0
        self.overflows = 0  # values the server flagged as following a queue overflow
        self.nonfinite = 0  # NaN / inf values with Good or Uncertain status, not stored

    def _clear(self) -> None:
        self._var, self._ts, self._value, self._quality = array("l"), array("q"), array("d"), array("L")

    def __len__(self) -> int:
        return len(self._var)

    def add(self, index: int, micros: int, value: float, quality: int) -> None:
        self._var.append(index)
        self._ts.append(micros)
        self._value.append(value)
        self._quality.append(quality)
        self.received += 1

    def extend(self, index: int, micros: np.ndarray, values: np.ndarray, quality: np.ndarray) -> None:
        self._var.extend(np.full(len(micros), index, dtype=np.int64).tolist())
        self._ts.extend(micros.tolist())
        self._value.extend(values.tolist())
        self._quality.extend(quality.tolist())
        self.received += len(micros)

    def take(self) -> tuple[pa.Table | None, np.ndarray]:
        """Removes and returns the writable values as a ``timeseries`` table, with the watermarks
        they would set (committed by :meth:`commit` once the table is durable).

        Values past a variable's limit stay in the buffer; values at or before its watermark, and
        repeated (variable, timestamp) pairs, are dropped as duplicates.
        """
        var = np.frombuffer(self._var, dtype=np.int64) if len(self._var) else np.zeros(0, np.int64)
        ts = np.frombuffer(self._ts, dtype=np.int64) if len(self._ts) else np.zeros(0, np.int64)
        value = np.frombuffer(self._value, dtype=np.float64) if len(self._value) else np.zeros(0)
        quality = np.frombuffer(self._quality, dtype=np.uint64) if len(self._quality) else np.zeros(0, np.uint64)
        ready = ts <= self.limit[var]
        held = (var[~ready].copy(), ts[~ready].copy(), value[~ready].copy(), quality[~ready].copy())
        # NOTE: the catalog keeps non-finite values only with Bad quality; a Good NaN is counted, not stored.
        usable = np.isfinite(value) | ((quality & 0x80000000) != 0)
        self.nonfinite += int((ready & ~usable).sum())
        fresh = ready & usable & (ts > self.watermark[var])
        var, ts, value, quality = var[fresh], ts[fresh], value[fresh], quality[fresh]
        order = np.lexsort((ts, var))
        var, ts, value, quality = var[order], ts[order], value[order], quality[order]
        if len(var) > 1:
            first = np.ones(len(var), dtype=bool)
            first[1:] = (var[1:] != var[:-1]) | (ts[1:] != ts[:-1])
            var, ts, value, quality = var[first], ts[first], value[first], quality[first]
        self.duplicates += int((ready & usable).sum()) - len(var)
        self._clear()
        self._var.extend(held[0].tolist())
        self._ts.extend(held[1].tolist())
        self._value.extend(held[2].tolist())
        self._quality.extend(held[3].tolist())
        watermark = self.watermark.copy()
        if len(var):
            np.maximum.at(watermark, var, ts)
        return (self._table(var, ts, value, quality) if len(var) else None), watermark

    def commit(self, watermark: np.ndarray) -> None:
        self.watermark = watermark

    def watermarks(self, watermark: np.ndarray | None = None) -> dict[str, int]:
        w = self.watermark if watermark is None else watermark
        return {v.name: int(w[i]) for i, v in enumerate(self.variables) if w[i] != NO_WATERMARK}

    def _table(self, var, ts, value, quality) -> pa.Table:
        def column(attr: str) -> pa.Array:
            labels = pa.array([getattr(v, attr) for v in self.variables], pa.string())
            return labels.take(pa.array(var))

        return pa.Table.from_arrays(
            [column("split"), column("plant"), column("asset"), column("signal"),
             pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")), pa.array(value, pa.float64()),
             pa.array(quality.astype(np.uint32), pa.uint32())],
            schema=KINDS["timeseries"].schema)
