"""NASA C-MAPSS turbofan run-to-failure data (Saxena et al., PHM08).

Each ``train_FD00x`` / ``test_FD00x`` file becomes one part of a ``runs`` dataset; the plant is
the sub-dataset (FD001..FD004) and the asset the engine unit. A ``rul`` label column holds the true
remaining useful life at every cycle: for training engines the cycles left to failure, for test
engines ``RUL_FD00x`` plus the cycles left in the truncated record.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.errors import DataError

from ._common import constant, digest, read_whitespace_table, require_dir

SETTINGS = [f"setting_{i}" for i in range(1, 4)]
SENSORS = [f"s{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]
_FILE = re.compile(r"^(train|test)_(FD00\d)\.txt(\.gz)?$")


def read_cmapss(src: str | Path, *, subsets: list[str] | None = None) -> IngestPlan:
    """Plans the ingest of every ``train_FD00x`` and ``test_FD00x`` file in ``src``.

    Args:
        src: directory with ``train_FD00x.txt[.gz]``, ``test_FD00x.txt[.gz]``, ``RUL_FD00x.txt[.gz]``.
        subsets: only these sub-datasets (e.g. ``["FD001"]``); default all found.
    """
    src = require_dir(Path(src), "C-MAPSS files (train_FD001.txt[.gz], ...)")
    parts = []
    for path in sorted(src.iterdir()):
        match = _FILE.match(path.name)
        if not match or (subsets and match.group(2) not in subsets):
            continue
        split, subset = match.group(1), match.group(2)
        files = [path]
        if split == "test":
            rul = _sibling(src, f"RUL_{subset}")
            if rul is None:
                raise DataError(f"test file has no RUL_{subset}.txt[.gz] beside it", file=str(path))
            files.append(rul)
        parts.append(Part(key=f"{split}_{subset}", digest=digest(files, reader="cmapss"), file=str(path), first_line=1,
                          load=lambda s=split, p=subset, f=files: _load(s, p, *f)))
    if not parts:
        raise DataError("no train_FD00x / test_FD00x files found", file=str(src))
    return IngestPlan(kind="runs", reader="cmapss", source=str(src), parts=parts,
                      roles={"id": ["plant", "asset"], "time": ["step"], "settings": SETTINGS,
                             "sensors": SENSORS, "labels": ["rul"]},
                      domain_columns=["plant"])


def _sibling(src: Path, stem: str) -> Path | None:
    for suffix in (".txt", ".txt.gz"):
        if (src / f"{stem}{suffix}").is_file():
            return src / f"{stem}{suffix}"
    return None


def _load(split: str, subset: str, path: Path, rul_path: Path | None = None) -> pa.Table:
    frame = read_whitespace_table(path, COLUMNS)
    unit = frame["unit"].to_numpy().astype(np.int64)
    cycle = frame["cycle"].to_numpy().astype(np.int64)
    if np.any(frame["unit"].to_numpy() != unit) or np.any(frame["cycle"].to_numpy() != cycle):
        row = int(np.flatnonzero((frame["unit"].to_numpy() != unit) | (frame["cycle"].to_numpy() != cycle))[0])
        raise DataError("unit and cycle must be whole numbers", file=str(path), row=row + 1)
    last = _last_cycle(unit, cycle)
    rul = last[unit] - cycle
    if rul_path is not None:
        final = read_whitespace_table(rul_path, ["rul"])["rul"].to_numpy().astype(np.int64)
        units = np.unique(unit)
        if len(final) != len(units):
            raise DataError(f"{len(final)} RUL values for {len(units)} test engines", file=str(rul_path))
        lookup = np.zeros(units.max() + 1, dtype=np.int64)
        lookup[units] = final
        rul = rul + lookup[unit]
    n = len(frame)
    columns = {
        "split": constant(split, n, pa.string()),
        "plant": constant(subset, n, pa.string()),
        "asset": pa.array(unit.astype(str)),
        "step": pa.array(cycle),
        **{c: pa.array(frame[c].to_numpy()) for c in SETTINGS + SENSORS},
        "rul": pa.array(rul.astype(np.int32)),
    }
    return pa.table(columns)


def _last_cycle(unit: np.ndarray, cycle: np.ndarray) -> np.ndarray:
    last = np.zeros(unit.max() + 1, dtype=np.int64)
    np.maximum.at(last, unit, cycle)
    return last
