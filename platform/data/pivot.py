"""A ``timeseries`` dataset (one row per value, e.g. captured over OPC UA) → a ``runs`` dataset
(one row per asset and time step, one column per signal), the shape windows are cut from."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import Catalog, IngestPlan, IngestResult, Part
from ..catalog.schemas import TIMESTAMP
from ..errors import DataError


def timeseries_to_runs(catalog: Catalog, source: str, dest: str, *, like: str | None = None,
                       good_only: bool = True) -> IngestResult:
    """Pivots ``source`` into the runs dataset ``dest`` (replaced if it exists).

    Values that share (split, plant, asset, source time) form one row. A ``step`` signal becomes
    the step column; without one, steps count rows per asset from 1. Each row keeps its source time
    in ``ts`` (to join windows with images or texts by time). With ``like``, column types
    and roles follow that runs dataset (e.g. the file-ingested dataset the signals came from).

    Raises:
        DataError: when a row lacks a signal the others have (the capture is incomplete there).
    """
    manifest = catalog.manifest(source)
    if manifest.kind != "timeseries":
        raise DataError(f"dataset is of kind {manifest.kind!r}, not timeseries", key=source)
    table = catalog.read(source)
    frame = table.to_pandas()
    if good_only:
        frame = frame[frame["quality"] & 0xC0000000 == 0]
    wide = frame.pivot_table(index=["split", "plant", "asset", "ts"], columns="signal", values="value",
                             aggfunc="first").reset_index()
    signals = [c for c in wide.columns if c not in ("split", "plant", "asset", "ts")]
    missing = wide[signals].isna().any(axis=1)
    if missing.any():
        row = wide[missing].iloc[0]
        absent = [s for s in signals if row[s] != row[s]]
        raise DataError(f"no value of {absent[0]!r} at {row['ts']} ({int(missing.sum())} incomplete rows)",
                        key=source, field=f"{row['plant']}/{row['asset']}")
    wide = wide.sort_values(["split", "plant", "asset", "ts"])
    if "step" not in signals:
        wide["step"] = wide.groupby(["split", "plant", "asset"]).cumcount() + 1
    reference = catalog.manifest(like) if like else None
    types = {f.name: f.type for f in pq.read_schema(catalog.files(like)[0])} if reference else {}
    columns = ["split", "plant", "asset", "step", "ts", *[s for s in signals if s != "step"]]
    ids = ("split", "plant", "asset")
    arrays = [pa.array(wide[c].astype(str).to_numpy(), pa.string()) if c in ids else
              pa.array(wide[c], from_pandas=True).cast(TIMESTAMP) if c == "ts" else
              pa.array(wide[c].to_numpy(), pa.float64()).cast(pa.int64() if c == "step" else types.get(c, pa.float64()))
              for c in columns]
    runs = pa.Table.from_arrays(arrays, names=columns)
    roles = {k: [c for c in v if c in columns] for k, v in (reference.roles.items() if reference else {}.items())}
    plan = IngestPlan(kind="runs", reader="pivot", source=f"catalog:{source}",
                      parts=[Part(f"pivot:{source}", manifest.content_hash, f"catalog:{source}", lambda: runs)],
                      roles=roles or {"id": ["plant", "asset"], "time": ["step"]},
                      domain_columns=reference.domain_columns if reference else ["plant"])
    return catalog.ingest(dest, plan, replace=catalog.exists(dest))
