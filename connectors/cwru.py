"""Case Western Reserve University bearing data (Smith & Randall, MSSP 2015).

Each recording becomes one row of a ``waveforms`` dataset: the drive-end accelerometer signal,
its sample rate, the motor load and speed (the domain), and the fault class. Fault recordings
are 12 kHz; the normal baselines are 48 kHz. ``normal_*_prefix.mat`` files hold the first
112,640 samples of a normal recording as a 110x1024 array whose rows, in order, are the signal.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.errors import DataError

from ._common import digest, require_dir

CLASSES = ["normal", "IR007", "B007", "OR007@6", "IR014", "B014", "OR014@6", "IR021", "B021", "OR021@6"]
_FAULT = re.compile(r"^12k_Drive_End_(?P<cls>(IR|B|OR)\d{3}(@\d+)?)_(?P<load>\d)_(?P<id>\d+)\.mat$")
_NORMAL = re.compile(r"^normal_(?P<load>\d)_(?P<id>\d+)(?P<prefix>_prefix)?\.mat$")
_RPM = {0: 1797, 1: 1772, 2: 1750, 3: 1730}


def read_cwru(src: str | Path) -> IngestPlan:
    """Plans the ingest of every recording listed in ``src/MANIFEST.csv`` (or found by file name).

    Args:
        src: directory with ``<load>HP/*.mat`` files and, optionally, ``MANIFEST.csv``
            (columns load_hp, rpm, class_index, class, file, cwru_id).
    """
    src = require_dir(Path(src), "CWRU .mat files")
    entries = _from_manifest(src) if (src / "MANIFEST.csv").is_file() else _from_names(src)
    if not entries:
        raise DataError("no CWRU recordings found (expected 12k_Drive_End_*.mat or normal_*.mat)", file=str(src))
    parts = [Part(key=e["file"], digest=digest([src / e["file"]], reader="cwru"), file=str(src / e["file"]),
                  load=lambda e=e: _load(src / e["file"], e))
             for e in entries]
    return IngestPlan(kind="waveforms", reader="cwru", source=str(src), parts=parts,
                      roles={"id": ["plant", "asset"], "labels": ["label", "label_id"], "domain": ["load_hp", "rpm"]},
                      domain_columns=["load_hp"], extra={"classes": CLASSES})


def _from_manifest(src: Path) -> list[dict]:
    path = src / "MANIFEST.csv"
    out = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        needed = {"load_hp", "rpm", "class_index", "class", "file", "cwru_id"}
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"missing columns {sorted(missing)}", file=str(path), field=sorted(missing)[0])
        for lineno, row in enumerate(reader, start=2):
            try:
                entry = {"load_hp": int(row["load_hp"]), "rpm": int(row["rpm"]), "label_id": int(row["class_index"]),
                         "label": row["class"], "file": row["file"], "cwru_id": int(row["cwru_id"])}
            except (TypeError, ValueError) as exc:
                raise DataError(f"bad value ({exc})", file=str(path), row=lineno) from None
            if not (src / entry["file"]).is_file() and entry["label"] == "normal":
                # NOTE: where the full 48 kHz normal recording is absent, its 110x1024 prefix stands in.
                entry["file"] = f"{entry['load_hp']}HP/normal_{entry['load_hp']}_{entry['cwru_id']}_prefix.mat"
            if not (src / entry["file"]).is_file():
                raise DataError(f"listed file {row['file']!r} does not exist", file=str(path), row=lineno,
                                field="file")
            out.append(entry)
    return out


def _from_names(src: Path) -> list[dict]:
    out = []
    for path in sorted(src.rglob("*.mat")):
        fault, normal = _FAULT.match(path.name), _NORMAL.match(path.name)
        match = fault or normal
        if match is None:
            continue
        label = fault.group("cls") if fault else "normal"
        if label not in CLASSES:
            raise DataError(f"unknown fault class {label!r}; known: {CLASSES}", file=str(path))
        load = int(match.group("load"))
        out.append({"load_hp": load, "rpm": _RPM.get(load, 0), "label_id": CLASSES.index(label), "label": label,
                    "file": str(path.relative_to(src)), "cwru_id": int(match.group("id"))})
    return out


def _load(path: Path, entry: dict) -> pa.Table:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DataError(f"cannot read MATLAB file ({exc})", file=str(path)) from None
    if path.name.endswith("_prefix.mat"):
        arrays = [k for k, v in mat.items() if not k.startswith("__") and getattr(v, "ndim", 0) == 2]
        if len(arrays) != 1 or mat[arrays[0]].shape[1] != 1024:
            raise DataError("expected one N x 1024 array of consecutive signal rows", file=str(path),
                            key=arrays[0] if arrays else None)
        signal, rate = mat[arrays[0]].reshape(-1), 48000.0
    else:
        key = f"X{entry['cwru_id']:03d}_DE_time"
        if key not in mat:
            found = [k for k in mat if not k.startswith("__")]
            raise DataError(f"expected drive-end key not found (keys: {found})", file=str(path), key=key)
        signal = np.asarray(mat[key]).reshape(-1)
        rate = 48000.0 if entry["label"] == "normal" else 12000.0
    if not np.all(np.isfinite(signal)):
        raise DataError(f"NaN or infinite sample at index {int(np.flatnonzero(~np.isfinite(signal))[0])}",
                        file=str(path))
    return pa.table({
        "split": ["all"], "plant": ["cwru"], "asset": [str(entry["cwru_id"])], "segment": pa.array([0], pa.int64()),
        "sample_rate": [rate], "label": [entry["label"]],
        "values": pa.ListArray.from_arrays(pa.array([0, len(signal)], pa.int32()), pa.array(signal.astype(np.float32))),
        "label_id": pa.array([entry["label_id"]], pa.int32()), "load_hp": pa.array([entry["load_hp"]], pa.int32()),
        "rpm": pa.array([entry["rpm"]], pa.int32()),
    })
