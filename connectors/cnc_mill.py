"""CNC milling tool-wear experiments (University of Michigan SMART Lab, 2018).

Each ``experiment_NN.csv`` (48 machine signals at 100 ms, the machining phase and the appended
``tool_condition``) becomes one asset of a ``runs`` dataset. Where the experiments' table of
set-points and outcomes is found (``train.csv`` beside ``data/``, or ``--setpoints FILE``), each
run also carries its ``feedrate`` and ``clamp_pressure`` and its outcomes (``machining_finalized``,
``passed_visual_inspection``; ``tool_condition`` is checked against the signal file's own).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.errors import DataError, shorten

from ._common import constant, digest, require_dir
from ._run_table import RunTable, read_run_table

_FILE = re.compile(r"^experiment_(\d+)\.csv(\.gz)?$")
TEXT_COLUMNS = ["Machining_Process", "tool_condition"]
SETPOINTS = ["feedrate", "clamp_pressure"]
OUTCOMES = ["tool_condition", "machining_finalized", "passed_visual_inspection"]


def read_cnc_mill(src: str | Path, *, plant: str = "cnc-mill", setpoints: str | None = None) -> IngestPlan:
    """Plans the ingest of every ``experiment_NN.csv`` in ``src`` (or ``src/data``), joined with the
    experiments' set-points and outcomes from ``setpoints`` (default: ``train.csv`` beside the data)."""
    src = require_dir(Path(src), "experiment_NN.csv files")
    if (src / "data").is_dir():
        src = src / "data"
    files = sorted(p for p in src.iterdir() if _FILE.match(p.name))
    if not files:
        raise DataError("no experiment_NN.csv files", file=str(src))
    table_path = Path(setpoints) if setpoints else next(
        (p for p in (src / "train.csv", src.parent / "train.csv") if p.is_file()), None)
    table = read_run_table(table_path, "No", setpoints=SETPOINTS, outcomes=OUTCOMES[1:],
                           attributes=["material", "tool_condition"]) if table_path else None
    extra = [table_path] if table_path else []
    parts = [Part(key=p.name, digest=digest([p, *extra], reader="cnc-mill", plant=plant), file=str(p), first_line=2,
                  load=lambda p=p: _load(p, plant, table)) for p in files]
    header = pd.read_csv(files[0], nrows=0).columns[1:]
    sensors = [c for c in header if c not in TEXT_COLUMNS]
    roles = {"id": ["plant", "asset"], "time": ["step"], "sensors": sensors, "labels": ["tool_condition"],
             "phase": ["Machining_Process"]}
    if table:
        roles.update(setpoints=SETPOINTS, outcomes=OUTCOMES, attributes=["material"])
    return IngestPlan(kind="runs", reader="cnc-mill", source=str(src), parts=parts, roles=roles,
                      domain_columns=["plant"])


def _load(path: Path, plant: str, table: RunTable | None) -> pa.Table:
    frame = pd.read_csv(path)
    frame = frame.rename(columns={frame.columns[0]: "step"})
    missing = [c for c in TEXT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError("missing column", file=str(path), field=missing[0])
    numeric = [c for c in frame.columns if c not in TEXT_COLUMNS]
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"not a finite number: {shorten(frame[col].iloc[row])}", file=str(path), row=row + 2, field=col)
        frame[col] = values
    n = len(frame)
    number = _FILE.match(path.name).group(1)
    columns = {"split": constant("all", n, pa.string()), "plant": constant(plant, n, pa.string()),
               "asset": constant(f"experiment_{number}", n, pa.string()),
               "step": pa.array(frame["step"].to_numpy().astype(np.int64))}
    columns.update({c: pa.array(frame[c].to_numpy()) for c in numeric if c != "step"})
    columns.update({c: pa.array(frame[c].astype(str).to_numpy(), pa.string()) for c in TEXT_COLUMNS})
    if table is not None:
        run = str(int(number))
        joined = table.join([run] * n, where=path.name)
        condition = joined.pop("tool_condition")[0].as_py()
        if condition and condition != frame["tool_condition"].iloc[0]:
            raise DataError(f"tool_condition {frame['tool_condition'].iloc[0]!r} here, {condition!r} in the run table "
                            f"{table.path} (line {table.lines[run]})", file=str(path), row=2, field="tool_condition")
        columns.update(joined)
    return pa.table(columns)
