"""Small real data shipped with the package so the demo and tests run on a fresh clone.

``cmapss/``: NASA C-MAPSS FD001 (train, test, RUL) and FD002 (train), unmodified gzip files.
Source: A. Saxena, K. Goebel, D. Simon, N. Eklund, "Damage Propagation Modeling for Aircraft
Engine Run-to-Failure Simulation", PHM 2008; NASA Ames Prognostics Data Repository. A work of the
US Government, in the public domain.

``neu/``: 120 NEU-DET steel-surface images (20 per defect class) with their VOC boxes, unmodified;
Song & Yan, Applied Surface Science 2013; He et al., IEEE TIM 2020 (see ``neu/NOTICE``).

``cwru_fe/``: the fan-end accelerometer of six CWRU bearing recordings (3 faults x 2 loads, 12,288
samples each); Smith & Randall, MSSP 2015 (see ``cwru_fe/NOTICE``).

``cwru_sensors/``: the drive-end, fan-end and base accelerometers of six CWRU fault recordings and
the drive-end and fan-end of one normal recording (6,144 samples each; see ``cwru_sensors/NOTICE``).

``maintie/``: the first 240 MaintIE work-order texts with their expert entity annotations
(Bikaun et al., LREC-COLING 2024; MIT, see ``maintie/NOTICE``).

``maintnet/``: the first 300 MaintNet aviation PROBLEM/ACTION rows (Akhbardeh et al., COLING 2020
demos; Apache-2.0, see ``maintnet/NOTICE``).

``cnc_mill/``: the 18 CNC milling experiments' set-points and outcomes (``train.csv``) and each one's
machine signals up to 12.8 s into layer 1 (University of Michigan SMART Lab, 2018; see ``cnc_mill/NOTICE``).

``magnetic_tile/``: 16 defect-free and 6 defective magnetic-tile images with their pixel masks;
Huang, Qiu & Yuan, The Visual Computer 2020 (see ``magnetic_tile/NOTICE``).
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).parent


def sample_path(name: str) -> Path:
    """The folder of the vendored sample ``name`` (e.g. ``"cmapss"``)."""
    path = _ROOT / name
    if not path.is_dir():
        known = sorted(p.name for p in _ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise FileNotFoundError(f"no vendored sample {name!r}; available: {known}")
    return path


def maintenance_log(path: Path, gold: Path | None = None) -> Path:
    """Writes MaintIE work orders (the vendored ones, or the ``gold_release.json`` at ``gold``) as a
    maintenance log CSV (columns ``note``, ``fault``), each labelled from its expert annotations
    alone: ``failed`` where an entity is a FailedState, ``degraded`` where one is another
    UndesirableState, else ``routine``. Returns ``path``."""
    import csv
    import json

    docs = json.loads(Path(gold or sample_path("maintie") / "gold_release.json").read_text())
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["note", "fault"])
        for doc in docs:
            types = [e["type"] for e in doc["entities"]]
            fault = "failed" if any(t.endswith("/FailedState") for t in types) else \
                "degraded" if any(t.startswith("State/UndesirableState") for t in types) else "routine"
            writer.writerow([doc["text"].replace("<id>", "").strip(), fault])
    return Path(path)


def cwru_folder(root: Path) -> Path:
    """Writes the vendored CWRU sensors as the Bearing Data Center lays them out (``<load>HP/*.mat``
    with ``X<id>_DE_time``, ``X<id>_FE_time`` and, for faults, ``X<id>_BA_time``); returns ``root``."""
    import numpy as np
    from scipy.io import savemat

    files: dict[Path, dict] = {}
    with np.load(_ROOT / "cwru_sensors" / "cwru_sensors.npz") as npz:
        for key in npz.files:
            label, load, xid, sensor = key.rsplit("_", 3)
            name = (f"normal_{load}_{int(xid[1:])}.mat" if label == "normal"
                    else f"12k_Drive_End_{label}_{load}_{int(xid[1:])}.mat")
            files.setdefault(root / f"{load}HP" / name, {})[f"{xid}_{sensor}_time"] = npz[key][:, None].astype(float)
    for path, arrays in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(path, arrays)
    return root


LINE_START = "2026-03-02T06:00:00Z"
LINE_MACHINES = {"mill_a": "experiment_01", "mill_b": "experiment_02", "mill_c": "experiment_03",
                 "mill_d": "experiment_04"}
LINE_SIGNALS = ["X1_ActualPosition", "X1_CurrentFeedback", "Y1_CurrentFeedback", "S1_CurrentFeedback"]
NEU_CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]


def inspection_line(root: Path, seed: int = 7) -> Path:
    """Writes an inspection line's three sources in the formats plants export, from vendored real data
    with times and machines assigned (``seed``): ``signals.csv``, a historian export (``time``,
    ``machine``, four CNC drive signals; one row per 100 ms from :data:`LINE_START`, one CNC
    experiment per machine), ``images.csv``, a manifest of 48 NEU images (8 per class) with the
    machine and time each was taken (mostly while the machine ran; one per class just after it
    started, before a whole window, and one long after it stopped), and ``notes.csv``, 30 MaintIE
    work orders with a time and machine each. Returns ``root``."""
    import csv
    import gzip
    import json

    import numpy as np
    import pandas as pd

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(LINE_START)
    machines = list(LINE_MACHINES)
    frames = []
    for machine, experiment in LINE_MACHINES.items():
        with gzip.open(sample_path("cnc_mill") / "data" / f"{experiment}.csv.gz", "rt") as fh:
            rows = pd.read_csv(fh)[LINE_SIGNALS]
        rows.insert(0, "time", [(start + pd.Timedelta(milliseconds=100 * i)).isoformat() for i in range(len(rows))])
        rows.insert(1, "machine", machine)
        frames.append(rows)
    pd.concat(frames).to_csv(root / "signals.csv", index=False)
    span_s = min(len(f) for f in frames) * 0.1
    images = sample_path("neu") / "IMAGES"
    with open(root / "images.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "label", "asset", "ts"])
        for c, label in enumerate(NEU_CLASSES):
            for i in range(1, 9):
                offset = {1: 0.5, 2: span_s + 30.0}.get(i, round(float(rng.uniform(2.0, span_s)), 3))
                out.writerow([str(images / f"{label}_{i}.jpg"), label, machines[(i + c) % len(machines)],
                              (start + pd.Timedelta(seconds=offset)).isoformat()])
    notes = json.loads((sample_path("maintie") / "gold_release.json").read_text())[:30]
    with open(root / "notes.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["text", "time", "machine"])
        for i, note in enumerate(notes):
            out.writerow([note["text"].replace("<id>", "").strip(),
                          (start + pd.Timedelta(seconds=round(float(rng.uniform(0, span_s)), 3))).isoformat(),
                          machines[i % len(machines)]])
    return root


def ingest_inspection_line(catalog, root: Path, *, progress: bool = True) -> Path:
    """Writes :func:`inspection_line`'s sources under ``root`` and ingests them into ``catalog`` as
    ``line_signals`` (runs with row times), ``line_images`` (events) and ``line_notes``, all of
    plant ``line1``, through the readers a plant's exports take. Returns ``root``."""
    from transferline.connectors import create_reader

    src = inspection_line(root)
    catalog.ingest("line_signals", create_reader("csv")(src / "signals.csv", time_col="time", asset_col="machine",
                                                        plant="line1"), progress=progress)
    catalog.ingest("line_images", create_reader("images")(src, manifest=str(src / "images.csv"), plant="line1"),
                   progress=progress)
    catalog.ingest("line_notes", create_reader("text")(src / "notes.csv", time_col="time", asset_col="machine",
                                                       plant="line1"), progress=progress)
    return src
