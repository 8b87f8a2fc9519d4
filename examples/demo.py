"""The main job on embedded defaults: the vendored C-MAPSS sample into a local catalog, then windows.

Run with ``make demo`` (or ``python examples/demo.py [--catalog DIR]``).
"""

from __future__ import annotations

import argparse
import time

from transferline.catalog import Catalog
from transferline.cli import format_manifest
from transferline.connectors import create_reader
from transferline.data import GroupNormalizer, load_windows
from transferline.sample_data import sample_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", help="catalog directory (default: $TRANSFERLINE_HOME or ./transferline-data)")
    args = parser.parse_args()
    catalog = Catalog(args.catalog)

    t0 = time.perf_counter()
    plan = create_reader("cmapss")(sample_path("cmapss"))
    result = catalog.ingest("cmapss-sample", plan, progress=True)
    print(f"\n[1/2] ingest: {result.status}, {result.new_rows:,} new rows in {time.perf_counter() - t0:.1f} s "
          f"→ {catalog.root}")
    print(format_manifest(result.manifest))

    t0 = time.perf_counter()
    source = load_windows(catalog, "cmapss-sample", "cmapss", split="train", domains=["FD002"])
    target = load_windows(catalog, "cmapss-sample", "cmapss", split="train", domains=["FD001"])
    target_test = load_windows(catalog, "cmapss-sample", "cmapss", split="test", domains=["FD001"], last_only=True)
    norm = GroupNormalizer.fit(source)
    x = norm.transform(source).get(slice(0, 256))
    print(f"\n[2/2] windows (30 cycles x 14 sensors, RUL cap 125) in {time.perf_counter() - t0:.1f} s")
    print(f"  source plant FD002 train: {len(source):>6,} windows from {len(set(source.assets)):>3} engines, "
          f"{len(norm.groups) - 1} operating conditions")
    print(f"  target plant FD001 train: {len(target):>6,} windows from {len(set(target.assets)):>3} engines")
    print(f"  target plant FD001 test:  {len(target_test):>6,} windows (last window of each engine)")
    print(f"  a normalized batch: shape {tuple(x.shape)}, mean {x.mean():+.3f}, std {x.std():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
