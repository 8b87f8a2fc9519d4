"""Maintenance text logs (CSV or JSON Lines) with a column mapping → a ``text`` dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.catalog.schemas import TIMESTAMP
from transferline.errors import DataError

from ._common import digest, parse_times


def read_text_log(src: str | Path, *, text_col: str = "text", id_col: str | None = None,
                  time_col: str | None = None, label_col: str | None = None, label_sep: str = "|",
                  paired_col: str | None = None, asset_col: str | None = None, plant: str = "default",
                  asset: str = "default") -> IngestPlan:
    """Plans the ingest of one CSV or JSONL log.

    Args:
        src: a ``.csv`` or ``.jsonl`` file.
        text_col: the free text.
        id_col: document id (default: row number).
        time_col: timestamp of the entry.
        label_col: labels, a list (JSONL) or ``label_sep``-separated string.
        paired_col: a second text paired with the first (e.g. the action taken for a problem).
        asset_col: the asset the entry is about (default: ``asset`` for all rows).
    """
    path = Path(src)
    if not path.is_file():
        raise DataError("no such file", file=str(path))
    opts = dict(text_col=text_col, id_col=id_col, time_col=time_col, label_col=label_col, label_sep=label_sep,
                paired_col=paired_col, asset_col=asset_col, plant=plant, asset=asset)
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    return IngestPlan(kind="text", reader="text", source=str(path),
                      parts=[Part(key=path.name, digest=digest([path], reader="text", **opts), file=str(path),
                                  first_line=1 if jsonl else 2, load=lambda: _load(path, jsonl, **opts))],
                      roles={"id": ["doc_id"], "labels": ["labels"]}, domain_columns=["plant"], extra={"mapping": opts})


def _records(path: Path, jsonl: bool) -> pd.DataFrame:
    if not jsonl:
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="error")
        except pd.errors.ParserError as exc:
            raise DataError(f"malformed CSV row ({exc})", file=str(path)) from None
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"malformed JSON ({exc.msg})", file=str(path), row=lineno) from None
    return pd.DataFrame(rows)


def _load(path: Path, jsonl: bool, *, text_col, id_col, time_col, label_col, label_sep, paired_col, asset_col,
          plant, asset) -> pa.Table:
    frame = _records(path, jsonl)
    first = 1 if jsonl else 2
    for col in (text_col, id_col, time_col, label_col, paired_col, asset_col):
        if col is not None and col not in frame.columns:
            raise DataError(f"mapped column not in file (columns: {list(frame.columns)})", file=str(path), field=col)
    n = len(frame)
    texts = frame[text_col].fillna("").astype(str)
    empty = texts.str.strip() == ""
    if empty.any():
        raise DataError("empty text", file=str(path), row=int(empty.to_numpy().argmax()) + first, field=text_col)
    labels = [[] for _ in range(n)]
    if label_col:
        labels = [list(v) if isinstance(v, list) else [s for s in str(v).split(label_sep) if s]
                  for v in frame[label_col].fillna("")]
    ts = pa.nulls(n, TIMESTAMP)
    if time_col:
        ts = parse_times(frame[time_col], file=str(path), field=time_col, rows=range(first, first + n))
    return pa.table({
        "split": ["all"] * n, "plant": [plant] * n,
        "asset": frame[asset_col].astype(str).tolist() if asset_col else [asset] * n, "ts": ts,
        "doc_id": frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(n)],
        "text": texts.tolist(), "labels": pa.array(labels, pa.list_(pa.string())),
        "paired_text": pa.array(frame[paired_col].astype(str).tolist() if paired_col else [None] * n, pa.string()),
    })
