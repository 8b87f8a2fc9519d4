"""`transferline inspect fit`: an anomaly model from a dataset's defect-free images."""

from __future__ import annotations

import sys

EPILOG = """example:
  transferline ingest images ./magnetic_tile --name tiles
  transferline inspect fit --dataset tiles --good MT_Free --method padim --out runs/tiles-padim
  transferline models register runs/tiles-padim --name tiles

Fits on the good images only (minus --holdout of them, kept for the test, and a tenth of the rest,
which sets the threshold); every other image is a defect for the test. Writes the run folder with
metrics.json and report.html (the highest-scoring images with their heat maps)."""


def add_parsers(sub) -> None:
    import argparse

    from .._ray import add_ray_arguments

    inspect = sub.add_parser("inspect", help="anomaly detection from defect-free images (PatchCore, PaDiM)")
    isub = inspect.add_subparsers(dest="action", required=True)
    fit = isub.add_parser("fit", help="fit an anomaly model, test it on held-out good and every defective image, "
                                      "write a run folder for `models register`", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--dataset", required=True, help="an images dataset (with masks for pixel AUROC)")
    fit.add_argument("--good", required=True, help="comma-separated labels of defect-free images")
    fit.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    fit.add_argument("--method", choices=["patchcore", "padim"], default="padim", help="default padim")
    fit.add_argument("--size", type=int, nargs=2, default=[224, 224], metavar=("H", "W"),
                     help="input size (default 224 224)")
    fit.add_argument("--encoder", default="timm/tf_efficientnet_lite0", help="a timm image encoder")
    fit.add_argument("--pretrained", default="imagenet",
                     help="imagenet (offline weights), a weights file or folder, or a pretraining run folder")
    fit.add_argument("--stages", type=int, nargs="+", default=[2, 3], help="backbone stages of the patch features")
    fit.add_argument("--coreset", type=float, default=0.05, help="patchcore: share of patches kept (default 0.05)")
    fit.add_argument("--quantile", type=float, default=0.99,
                     help="threshold: this quantile of held-out good images' scores (default 0.99)")
    fit.add_argument("--holdout", type=float, default=0.2, help="share of good images kept for the test (default 0.2)")
    fit.add_argument("--seed", type=int, default=0, help="draws the held-out images, the coreset start and PaDiM's "
                     "dimensions (default 0)")
    add_ray_arguments(fit, "Ray (patch features computed by a pool of actors, images read through Ray Data)",
                      "N feature actors (default: in this process)")
    fit.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME, else "
                                                      "./transferline-data)")


def run_inspect(args) -> int:
    from ..catalog import Catalog
    from ..errors import TransferlineError
    from . import AnomalyConfig
    from .run import fit_dataset

    try:
        config = AnomalyConfig(method=args.method, encoder=args.encoder, pretrained=args.pretrained,
                               stages=tuple(args.stages), coreset=args.coreset, quantile=args.quantile, seed=args.seed)
    except ValueError as exc:
        raise TransferlineError(str(exc)) from None
    good = [g.strip() for g in args.good.split(",") if g.strip()]
    result = fit_dataset(Catalog(args.catalog), args.dataset, good, args.out, config, size=tuple(args.size),
                         holdout=args.holdout, progress=sys.stderr.isatty(), say=print, workers=args.workers,
                         address=args.address, cpus_per_worker=args.cpus_per_worker)
    print(f"wrote {result['out']} (register it: transferline models register {result['out']} --name NAME)")
    return 0
