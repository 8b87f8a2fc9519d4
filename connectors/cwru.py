"""Case Western Reserve University bearing data (Smith & Randall, MSSP 2015).

Each recording becomes one row of a ``waveforms`` dataset: one accelerometer's signal (drive end,
fan end or base: ingest each as its own dataset and join them by recording for several), its sample rate, the motor load and speed (the domain), and the fault class. Fault recordings
are 12 kHz; the normal baselines are 48 kHz. ``normal_*_prefix.mat`` files hold the first
112,640 samples of a normal recording as a 110x1024 array whose rows, in order, are the signal.
The normal recordings have no base signal, and the prefixes only the drive end's: a recording
without the chosen sensor is left out of that sensor's dataset and named in the plan's summary.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow as pa

from transferline.catalog import IngestPlan
from transferline.errors import DataError

from ._common import digest, require_dir
from .waveforms import Recording, plan_waveforms

CLASSES = ["normal", "IR007", "B007", "OR007@6", "IR014", "B014", "OR014@6", "IR021", "B021", "OR021@6"]
_FAULT = re.compile(r"^12k_Drive_End_(?P<cls>(IR|B|OR)\d{3}(@\d+)?)_(?P<load>\d)_(?P<id>\d+)\.mat$")
_NORMAL = re.compile(r"^normal_(?P<load>\d)_(?P<id>\d+)(?P<prefix>_prefix)?\.mat$")
_RPM = {0: 1797, 1: 1772, 2: 1750, 3: 1730}
SENSORS = {"DE": "drive end", "FE": "fan end", "BA": "base"}


def read_cwru(src: str | Path, sensor: str = "DE") -> IngestPlan:
    """Plans the ingest of every recording listed in ``src/MANIFEST.csv`` (or found by file name).

    A preset of the generic waveform path (:func:`~transferline.connectors.waveforms.plan_waveforms`):
    one sensor's channel, the CWRU class list in its published order, load and speed as domains.

    Args:
        src: directory with ``<load>HP/*.mat`` files and, optionally, ``MANIFEST.csv``
            (columns load_hp, rpm, class_index, class, file, cwru_id).
        sensor: ``DE`` (drive end), ``FE`` (fan end) or ``BA`` (base accelerometer).
    """
    sensor = str(sensor).upper()
    if sensor not in SENSORS:
        raise DataError(f"unknown CWRU sensor {sensor!r}; known: {', '.join(f'{k} ({v})' for k, v in SENSORS.items())}",
                        field="sensor")
    src = require_dir(Path(src), "CWRU .mat files")
    entries = _from_manifest(src) if (src / "MANIFEST.csv").is_file() else _from_names(src)
    if not entries:
        raise DataError("no CWRU recordings found (expected 12k_Drive_End_*.mat or normal_*.mat)", file=str(src))
    lacking = [e for e in entries if not _has_sensor(src, e, sensor)]
    entries = [e for e in entries if e not in lacking]
    if not entries:
        raise DataError(f"no CWRU recording here has the {SENSORS[sensor]} sensor (X<id>_{sensor}_time)",
                        file=str(src))
    recordings = [_recording(src, e, sensor) for e in entries]
    plan = plan_waveforms(src, recordings, reader="cwru", classes=CLASSES, label_id=True, plant="cwru",
                          field_types={"load_hp": pa.int32(), "rpm": pa.int32()},
                          part_digest=lambda r: digest([r.path], reader="cwru",
                                                       **({"sensor": sensor} if sensor != "DE" else {})))
    plan.roles["domain"] = ["load_hp", "rpm"]
    plan.domain_columns = ["load_hp"]
    plan.extra["sensor"] = sensor
    if lacking:
        plan.summary += (f"\n  left out {len(lacking)} recording(s) without the {SENSORS[sensor]} sensor: "
                         f"{', '.join(e['file'] for e in lacking[:4])}{' ...' if len(lacking) > 4 else ''}")
    return plan


def _has_sensor(src: Path, e: dict, sensor: str) -> bool:
    """Whether the recording's file holds ``sensor`` (read from its variable list, not its data)."""
    from scipy.io import whosmat

    if e["file"].endswith("_prefix.mat"):  # the prefixes hold the drive end's signal only
        return sensor == "DE"
    if sensor == "DE":  # required: a file without it is an error at ingest, naming the key
        return True
    path = src / e["file"]
    try:
        names = [name for name, _, _ in whosmat(path)]
    except Exception as exc:  # noqa: BLE001  (scipy raises several types for a damaged file)
        raise DataError(f"cannot read MATLAB file ({exc})", file=str(path)) from None
    return f"X{e['cwru_id']:03d}_{sensor}_time" in names


def _recording(src: Path, e: dict, sensor: str) -> Recording:
    prefix = e["file"].endswith("_prefix.mat")
    # NOTE: fault recordings are 12 kHz; the normal baselines are 48 kHz.
    return Recording(path=src / e["file"], label=e["label"], asset=str(e["cwru_id"]),
                     fields={"load_hp": e["load_hp"], "rpm": e["rpm"]},
                     sample_rate=48000.0 if e["label"] == "normal" else 12000.0,
                     keys=None if prefix else [f"X{e['cwru_id']:03d}_{sensor}_time"], rows_are_time=prefix,
                     channel_names=[f"{sensor}_time"])


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
