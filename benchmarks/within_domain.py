"""Within-domain C-MAPSS RUL (FD001, FD002) per encoder, against published numbers: each seed's
model alone, and ensembles of ``--ensemble`` models (consecutive seeds, their test predictions
averaged; ``--seeds 0 1 2 3 4 5 --ensemble 3``: two ensembles of three).

Writes ``benchmarks/results/within_domain.json`` and ``.md``.
Usage: ``python benchmarks/within_domain.py [--encoders cnn_small lstm tsai/sequencer] [--seeds 0 1 2] [--ensemble 3]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import add_common_args, bench_catalog, run_seeds, stats  # noqa: E402

from transferline.tasks.metrics import nasa_score, rmse  # noqa: E402

ANCHORS = {"FD001": {"MTSTAN": 10.97, "FFVE": 12.31}, "FD002": {"MTSTAN": 16.81, "FFVE": 12.55}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--encoders", nargs="+", default=["cnn_small", "lstm", "tsai/sequencer"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ensemble", type=int, default=1, help="models per ensemble (consecutive seeds); 1: none")
    args = parser.parse_args()
    started()
    catalog = bench_catalog(args.catalog, args.data, {"cmapss": ("cmapss", "cmapss")})
    if args.ensemble < 1 or len(args.seeds) < args.ensemble:
        parser.error(f"--ensemble {args.ensemble} needs at least that many --seeds")
    details = {}
    for subset in ("FD001", "FD002"):
        for encoder in args.encoders:
            options = ["encoder.options={}"] if encoder != "cnn_small" else []
            runs = run_seeds(catalog, "within_domain.yaml",
                             [f"source.domains=[{subset}]", f"target.domains=[{subset}]", f"encoder={encoder}",
                              *options, *args.overrides], args.seeds, predictions=True)
            details[f"{subset}/{encoder}"] = {"rmse": stats(runs, "test_rmse"), "score": stats(runs, "test_score"),
                                              "seconds": stats(runs, "seconds")}
            print(f"{subset} {encoder:18s} RMSE {details[f'{subset}/{encoder}']['rmse']['mean']:.2f}", flush=True)
            if args.ensemble > 1:
                groups = [runs[i:i + args.ensemble] for i in range(0, len(runs) - args.ensemble + 1, args.ensemble)]
                key = f"{subset}/{encoder} x{args.ensemble}"
                scored = [ensemble(g) for g in groups]
                details[key] = {"rmse": stats(scored, "test_rmse"), "score": stats(scored, "test_score"),
                                "members": [[r["seed"] for r in g] for g in groups]}
                print(f"{subset} {key.split('/', 1)[1]:18s} RMSE {details[key]['rmse']['mean']:.2f}", flush=True)
    best = {s: min((k for k in details if k.startswith(s)), key=lambda k: details[k]["rmse"]["mean"])
            for s in ("FD001", "FD002")}
    summary = {"fd001_rmse": details[best["FD001"]]["rmse"]["mean"], "fd001_encoder": best["FD001"].split("/", 1)[1],
               "fd002_rmse": details[best["FD002"]]["rmse"]["mean"], "fd002_encoder": best["FD002"].split("/", 1)[1],
               "fd001_single_model_rmse": min(v["rmse"]["mean"] for k, v in details.items()
                                              if k.startswith("FD001") and " x" not in k),
               "anchors": ANCHORS}
    lines = ["| subset | encoder | RMSE (ours) | NASA score | MTSTAN | FFVE |", "|---|---|---|---|---|---|"]
    for key, d in details.items():
        subset, encoder = key.split("/", 1)
        lines.append(f"| {subset} | {encoder} | {d['rmse']['mean']:.2f} ± {d['rmse']['std']:.2f} | "
                     f"{d['score']['mean']:.0f} | {ANCHORS[subset]['MTSTAN']} | {ANCHORS[subset]['FFVE']} |")
    table = "\n".join(lines) + (f"\n\nLast window of each test engine, RUL cap 125, mean ± std over seeds {args.seeds}; "
                                f"xN: ensembles of N models of consecutive seeds (test predictions averaged), "
                                "mean ± std over the ensembles.")
    write_results("within_domain", {"seeds": args.seeds, "encoders": args.encoders, "ensemble": args.ensemble,
                                    "overrides": args.overrides}, summary, details, table)
    return 0


def ensemble(runs: list[dict]) -> dict:
    """The test RMSE and NASA score of the runs' averaged predictions (each run's clipped at 0)."""
    if any(not np.array_equal(r["target"], runs[0]["target"]) for r in runs):
        raise ValueError("the runs were tested on different windows")
    predicted = torch.from_numpy(np.mean([r["predicted"] for r in runs], axis=0))
    target = torch.from_numpy(runs[0]["target"])
    return {"test_rmse": rmse(predicted, target), "test_score": nasa_score(predicted, target)}


if __name__ == "__main__":
    raise SystemExit(main())
