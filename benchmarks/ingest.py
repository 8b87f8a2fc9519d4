"""Ingest and window throughput on the real C-MAPSS and CWRU data, against plain pandas/scipy.

Writes ``benchmarks/results/ingest.json`` and ``ingest.md``. Each number is the median of
``--repeats`` runs; the baselines run in the same process, interleaved, so ratios are fair on a
noisy machine. Usage: ``python benchmarks/ingest.py [--data ../shared/data] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.io import loadmat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402

from transferline.catalog import Catalog  # noqa: E402
from transferline.connectors import create_reader  # noqa: E402
from transferline.connectors.cmapss import COLUMNS  # noqa: E402
from transferline.data import CMAPSS_SENSORS, GroupNormalizer, WindowDataset, load_windows  # noqa: E402


def source_bytes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern))


def ingest_once(fmt: str, src: Path) -> tuple[float, int]:
    root = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    try:
        t0 = time.perf_counter()
        result = Catalog(root).ingest(fmt, create_reader(fmt)(src))
        return time.perf_counter() - t0, result.new_rows
    finally:
        shutil.rmtree(root)


def baseline_cmapss(src: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = sum(len(pd.read_csv(p, sep=r"\s+", header=None)) for p in sorted(src.glob("*_FD00*.txt.gz"))
               if not p.name.startswith("RUL"))
    return time.perf_counter() - t0, rows


def baseline_cwru(src: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for path in sorted(src.rglob("*.mat")):
        mat = loadmat(path)
        key = next(k for k in mat if k.endswith("_DE_time") or k.startswith("Normal"))
        n += np.asarray(mat[key], np.float32).size
    return time.perf_counter() - t0, 40


def windows_from_catalog(catalog: Catalog) -> tuple[float, int]:
    t0 = time.perf_counter()
    w = load_windows(catalog, "cmapss", "cmapss", split="train")
    w = GroupNormalizer.fit(w).transform(w)
    n = 0
    for x, y, _ in WindowDataset(w).loader(batch_size=256, shuffle=True):
        n += len(x)
    return time.perf_counter() - t0, n


def windows_baseline(src: Path) -> tuple[float, int]:
    """The usual hand-written path: read text, z-score globally, slice windows per unit in Python."""
    t0 = time.perf_counter()
    frames = [pd.read_csv(p, sep=r"\s+", header=None, names=COLUMNS).assign(sub=p.name)
              for p in sorted(src.glob("train_FD00*.txt.gz"))]
    frame = pd.concat(frames)
    feats = frame[CMAPSS_SENSORS].to_numpy(np.float32)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    xs = []
    for (_, _), idx in frame.reset_index(drop=True).groupby(["sub", "unit"]).indices.items():
        unit = feats[idx]
        xs.extend(unit[i - 30:i].T for i in range(30, len(unit) + 1))
    x = torch.from_numpy(np.stack(xs))
    n = 0
    for batch in torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=256, shuffle=True):
        n += len(batch[0])
    return time.perf_counter() - t0, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    started()
    cmapss, cwru = args.data / "cmapss", args.data / "cwru"
    sizes = {"cmapss": source_bytes(cmapss, "*.txt.gz"), "cwru": source_bytes(cwru, "*.mat")}
    runs: dict[str, list[float]] = {k: [] for k in ("cmapss", "cmapss_base", "cwru", "cwru_base", "win", "win_base")}
    rows: dict[str, int] = {}
    root = Path(tempfile.mkdtemp(prefix="tl-bench-win-"))
    catalog = Catalog(root)
    catalog.ingest("cmapss", create_reader("cmapss")(cmapss))
    for r in range(args.repeats):
        for key, fn, arg in (("cmapss", lambda s: ingest_once("cmapss", s), cmapss), ("cmapss_base", baseline_cmapss, cmapss),
                             ("cwru", lambda s: ingest_once("cwru", s), cwru), ("cwru_base", baseline_cwru, cwru),
                             ("win", lambda _: windows_from_catalog(catalog), None), ("win_base", windows_baseline, cmapss)):
            seconds, n = fn(arg)
            runs[key].append(seconds)
            rows[key] = n
            print(f"repeat {r + 1}/{args.repeats} {key:12s} {seconds:7.2f} s ({n:,})", flush=True)
    shutil.rmtree(root)
    med = {k: spread(v)["median"] for k, v in runs.items()}
    summary = {
        "cmapss_ingest_mb_per_s": sizes["cmapss"] / 1e6 / med["cmapss"],
        "cmapss_ingest_rows_per_s": rows["cmapss"] / med["cmapss"],
        "cmapss_ingest_vs_read_csv": med["cmapss"] / med["cmapss_base"],
        "cwru_ingest_mb_per_s": sizes["cwru"] / 1e6 / med["cwru"],
        "cwru_ingest_vs_loadmat": med["cwru"] / med["cwru_base"],
        "windows_per_s": rows["win"] / med["win"],
        "windows_per_s_baseline": rows["win_base"] / med["win_base"],
        "windows_speedup_vs_baseline": med["win_base"] / med["win"],
    }
    table = "\n".join([
        "| measure | transferline | plain baseline | ratio |", "|---|---|---|---|",
        f"| C-MAPSS ingest, {sizes['cmapss'] / 1e6:.1f} MB gz, {rows['cmapss']:,} rows | {med['cmapss']:.2f} s "
        f"({summary['cmapss_ingest_mb_per_s']:.1f} MB/s, {summary['cmapss_ingest_rows_per_s']:,.0f} rows/s) | "
        f"{med['cmapss_base']:.2f} s (pandas.read_csv) | {summary['cmapss_ingest_vs_read_csv']:.2f}x time |",
        f"| CWRU ingest, {sizes['cwru'] / 1e6:.1f} MB .mat, 40 recordings | {med['cwru']:.2f} s "
        f"({summary['cwru_ingest_mb_per_s']:.1f} MB/s) | {med['cwru_base']:.2f} s (scipy.io.loadmat) | "
        f"{summary['cwru_ingest_vs_loadmat']:.2f}x time |",
        f"| C-MAPSS train windows (30x14) into torch batches | {summary['windows_per_s']:,.0f} windows/s | "
        f"{summary['windows_per_s_baseline']:,.0f} windows/s (pandas + Python slicing) | "
        f"{summary['windows_speedup_vs_baseline']:.2f}x faster |",
    ])
    details = {k: spread(v) for k, v in runs.items()} | {"rows": rows, "source_bytes": sizes}
    write_results("ingest", {"repeats": args.repeats, "data": str(args.data)}, summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
