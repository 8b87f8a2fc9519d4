"""The catalog's dataset kinds and their Arrow schemas, defined in one place.

Every kind has a fixed set of required columns with exact types. ``runs`` and ``waveforms`` may
carry further numeric columns (settings, sensors, domain columns such as load); their roles are
recorded in the dataset manifest, not in the column names.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 1

TIMESTAMP = pa.timestamp("us", tz="UTC")
BOX = pa.struct([("label", pa.string()), ("xmin", pa.int32()), ("ymin", pa.int32()),
                 ("xmax", pa.int32()), ("ymax", pa.int32())])
SPAN = pa.struct([("label", pa.string()), ("start", pa.int32()), ("end", pa.int32())])  # character offsets, end exclusive


@dataclass(frozen=True)
class Kind:
    """A dataset kind: required columns, whether extra columns are allowed, and how it is partitioned."""

    name: str
    schema: pa.Schema
    extra_columns: bool = False
    partition_by: tuple[str, ...] = ("split", "plant")
    optional: pa.Schema = pa.schema([])  # columns a dataset may carry, with exact types


KINDS: dict[str, Kind] = {
    "timeseries": Kind(
        "timeseries",
        pa.schema([("split", pa.string()), ("plant", pa.string()), ("asset", pa.string()), ("signal", pa.string()),
                   ("ts", TIMESTAMP), ("value", pa.float64()), ("quality", pa.uint32())]),
        partition_by=("split", "plant", "asset"),
    ),
    "runs": Kind(
        "runs",
        pa.schema([("split", pa.string()), ("plant", pa.string()), ("asset", pa.string()), ("step", pa.int64())]),
        extra_columns=True,
    ),
    "waveforms": Kind(
        "waveforms",
        pa.schema([("split", pa.string()), ("plant", pa.string()), ("asset", pa.string()), ("segment", pa.int64()),
                   ("sample_rate", pa.float64()), ("label", pa.string()),
                   ("values", pa.list_(pa.float32()))]),
        extra_columns=True,
    ),
    "images": Kind(
        "images",
        pa.schema([("split", pa.string()), ("plant", pa.string()), ("asset", pa.string()), ("ts", TIMESTAMP),
                   ("image", pa.binary()), ("format", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                   ("label", pa.string()), ("boxes", pa.list_(BOX)), ("source", pa.string())]),
        optional=pa.schema([("mask", pa.binary())]),  # encoded segmentation mask aligned with the image
    ),
    "text": Kind(
        "text",
        pa.schema([("split", pa.string()), ("plant", pa.string()), ("asset", pa.string()), ("ts", TIMESTAMP),
                   ("doc_id", pa.string()), ("text", pa.string()), ("labels", pa.list_(pa.string())),
                   ("paired_text", pa.string())]),
        optional=pa.schema([("spans", pa.list_(SPAN))]),  # annotated entity spans in each text (may nest)
    ),
}


def get_kind(name: str) -> Kind:
    """Returns the kind called ``name``; raises ValueError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown dataset kind {name!r}; known: {', '.join(KINDS)}") from None
