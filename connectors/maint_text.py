"""Maintenance logs: MaintIE (Bikaun et al., LREC-COLING 2024) and MaintNet (Akhbardeh et al., 2020).

MaintIE document labels are derived from its expert entity types: every prefix of every entity
type path, e.g. ``State``, ``State/UndesirableState``, ``State/UndesirableState/FailedState``. A
document is "failed" when ``State/UndesirableState/FailedState`` is among them; its top-level object
classes are the two-level ``PhysicalObject/...`` labels.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.catalog.schemas import SPAN, TIMESTAMP
from transferline.errors import DataError

from ._common import digest

FAILED_STATE = "State/UndesirableState/FailedState"


def read_maintie(src: str | Path, *, plant: str = "maintie", asset: str = "fleet") -> IngestPlan:
    """Plans the ingest of ``gold_release.json`` (``src`` is the file or its folder)."""
    path = _locate(Path(src), "gold_release.json")
    return IngestPlan(kind="text", reader="maintie", source=str(path),
                      parts=[Part(key=path.name, digest=digest([path], reader="maintie", plant=plant, asset=asset),
                                  file=str(path), load=lambda: _load_maintie(path, plant, asset))],
                      roles={"id": ["doc_id"], "labels": ["labels"]}, domain_columns=["plant"],
                      extra={"failed_label": FAILED_STATE})


def read_maintnet(src: str | Path, *, plant: str = "maintnet", asset: str = "aviation") -> IngestPlan:
    """Plans the ingest of MaintNet's ``Aircraft_Annotation_DataFile.csv`` (PROBLEM/ACTION pairs)."""
    path = _locate(Path(src), "Aircraft_Annotation_DataFile.csv")
    return IngestPlan(kind="text", reader="maintnet", source=str(path),
                      parts=[Part(key=path.name, digest=digest([path], reader="maintnet", plant=plant, asset=asset),
                                  file=str(path), first_line=2, load=lambda: _load_maintnet(path, plant, asset))],
                      roles={"id": ["doc_id"], "text": ["text"], "paired_text": ["paired_text"]},
                      domain_columns=["plant"])


def document_labels(entity_types: list[str]) -> list[str]:
    """Every prefix of every entity type path, sorted."""
    labels = set()
    for typ in entity_types:
        parts = typ.split("/")
        labels.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(labels)


def _locate(src: Path, name: str) -> Path:
    path = src / name if src.is_dir() else src
    if src.is_dir() and not path.is_file():
        found = next(src.rglob(name), None)
        path = found or path
    if not path.is_file():
        raise DataError(f"expected {name}", file=str(path))
    return path


def _load_maintie(path: Path, plant: str, asset: str) -> pa.Table:
    try:
        docs = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", file=str(path), row=exc.lineno) from None
    if not isinstance(docs, list):
        raise DataError("expected a JSON list of documents", file=str(path))
    texts, labels, spans = [], [], []
    for i, doc in enumerate(docs, start=1):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise DataError("document has no text", file=str(path), row=i, field="text")
        tokens = doc.get("tokens")
        if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens)):
            raise DataError("tokens must be a list of non-empty strings", file=str(path), row=i, field="tokens")
        # NOTE: the entities index the tokens; the few texts that differ from their tokens (a spelling
        # fixed by the annotators) are stored as the annotated tokens joined by spaces
        text = " ".join(tokens) if tokens else doc["text"]
        starts = [0]
        for token in tokens or []:
            starts.append(starts[-1] + len(token) + 1)
        types, doc_spans = [], []
        for ent in doc.get("entities", []):
            if "type" not in ent:
                raise DataError("entity has no type", file=str(path), row=i, field="entities")
            start, end = ent.get("start"), ent.get("end")
            if not tokens or not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(tokens):
                raise DataError(f"entity token range {start}..{end} lies outside the document's "
                                f"{len(tokens or [])} tokens", file=str(path), row=i, field="entities")
            types.append(ent["type"])
            doc_spans.append({"label": ent["type"], "start": starts[start], "end": starts[end] - 1})
        texts.append(text)
        labels.append(document_labels(types))
        spans.append(doc_spans)
    table = _text_table(texts, labels, [None] * len(texts), [str(i) for i in range(len(texts))], plant, asset)
    return table.append_column("spans", pa.array(spans, pa.list_(SPAN)))


def _load_maintnet(path: Path, plant: str, asset: str) -> pa.Table:
    ids, problems, actions = [], [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        for col in ("IDENT", "PROBLEM", "ACTION"):
            if col not in (reader.fieldnames or []):
                raise DataError(f"missing column (has {reader.fieldnames})", file=str(path), field=col)
        for lineno, row in enumerate(reader, start=2):
            if not (row["PROBLEM"] or "").strip():
                raise DataError("empty problem text", file=str(path), row=lineno, field="PROBLEM")
            ids.append(row["IDENT"])
            problems.append(row["PROBLEM"].strip())
            actions.append((row["ACTION"] or "").strip() or None)
    return _text_table(problems, [[] for _ in ids], actions, ids, plant, asset)


def _text_table(texts, labels, paired, ids, plant, asset) -> pa.Table:
    n = len(texts)
    return pa.table({"split": ["all"] * n, "plant": [plant] * n, "asset": [asset] * n, "ts": pa.nulls(n, TIMESTAMP),
                     "doc_id": ids, "text": texts, "labels": pa.array(labels, pa.list_(pa.string())),
                     "paired_text": pa.array(paired, pa.string())})
