"""The main job on embedded defaults, on the vendored real C-MAPSS sample:

1. ingest it into a local catalog;
2. cut windows (30 cycles x 14 sensors) per plant;
3. pretrain an encoder on the source plant (FD002: six operating conditions, labelled);
4. transfer to the target plant (FD001) with five labelled engines, and print the target test
   metrics of the source model alone, of the five engines alone (from scratch), and of the transfer.

Run with ``make demo`` (or ``python examples/demo.py [--catalog DIR] [--runs DIR]``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from transferline.catalog import Catalog
from transferline.cli import format_manifest
from transferline.connectors import create_reader
from transferline.sample_data import sample_path
from transferline.train import load_config, prepare_data, train_loop

CONFIGS = Path(__file__).resolve().parent / "configs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", help="catalog directory (default: $TRANSFERLINE_HOME or ./transferline-data)")
    parser.add_argument("--runs", default="runs/demo", help="where run directories go")
    parser.add_argument("--quick", action="store_true", help="a few steps per run (smoke test)")
    args = parser.parse_args()
    catalog = Catalog(args.catalog)
    runs = Path(args.runs)
    quick = ["epochs=1", "optim.max_steps_per_epoch=5"] if args.quick else []

    t0 = time.perf_counter()
    result = catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")), progress=True)
    print(f"\n[1/4] ingest: {result.status}, {result.new_rows:,} new rows in {time.perf_counter() - t0:.1f} s "
          f"→ {catalog.root}")
    print(format_manifest(result.manifest))

    common = [f"catalog={catalog.root}", "progress=false", *quick]
    transfer_cfg = load_config(CONFIGS / "demo_transfer.yaml", common)
    data = prepare_data(transfer_cfg, catalog)
    print(f"\n[2/4] windows: source FD002 {len(data.source_train):,} train / {len(data.source_val):,} val windows; "
          f"target FD001 {len(data.target_train):,} unlabelled windows, "
          f"{len(set(data.target_labelled.assets))} labelled engines ({len(data.target_labelled):,} windows), "
          f"{len(data.test)} test engines")

    t0 = time.perf_counter()
    pre = train_loop({**load_config(CONFIGS / "demo_pretrain.yaml", common), "run_dir": str(runs / "pretrain")})
    print(f"[3/4] pretrained on FD002 in {time.perf_counter() - t0:.0f} s: source val loss {pre['val_loss']:.4f} "
          f"→ {runs / 'pretrain'}")

    t0 = time.perf_counter()
    pretrained = [f"pretrained={runs / 'pretrain'}"]
    variants = {
        "source model only, no FD001 labels": ["adaptation=source_only", "target.labelled_units=0",
                                                   "strategy=linear_probe", *pretrained],
        "5 FD001 engines alone, from scratch": ["adaptation=source_only", "source.domains=null",
                                                 "strategy=full"],
        "transfer: source model + 5 engines + MMD": pretrained,
    }
    results = {}
    for name, overrides in variants.items():
        config = load_config(CONFIGS / "demo_transfer.yaml", [*common, *overrides])
        config["run_dir"] = str(runs / name.split(",")[0].split(":")[0].replace(" ", "_"))
        results[name] = train_loop(config)
    print(f"[4/4] transfer to FD001 in {time.perf_counter() - t0:.0f} s — target test set, last window of each of "
          f"100 engines:")
    print(f"  {'':42s} {'RMSE':>7s} {'NASA score':>11s}")
    for name, m in results.items():
        print(f"  {name:42s} {m['test_rmse']:7.2f} {m['test_score']:11.0f}")
    scratch, transfer = (results[k]["test_rmse"] for k in list(results)[1:])
    print(f"  transfer vs the same 5 engines from scratch: RMSE {100 * (transfer / scratch - 1):+.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
