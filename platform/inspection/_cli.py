"""`transferline inspect fit`: an anomaly model from a dataset's defect-free images; `inspect detect`: a
defect detector with boxes."""

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

    inspect = sub.add_parser("inspect", help="visual inspection: anomaly detection from defect-free images (PatchCore, PaDiM), "
                                                "defect detection with boxes (FCOS)")
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
    fit.add_argument("--standardize", action="store_true",
                     help="bring each image to zero mean and unit variance first (surfaces photographed at "
                          "varying exposure; recorded in the input spec, so serving does the same)")
    fit.add_argument("--resize", choices=["stretch", "pad"], default="stretch",
                     help="to the input size: stretch (default), or pad (scale whole, keeping the aspect, and pad; "
                          "pixel AUROC leaves the padding out)")
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
    _add_detect(isub)
    add_ray_arguments(fit, "Ray (patch features computed by a pool of actors, images read through Ray Data)",
                      "N feature actors (default: in this process)")
    fit.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME, else "
                                                      "./transferline-data)")


DETECT_EPILOG = """example:
  transferline ingest neu-det ./NEU-DET --name neu
  transferline inspect detect --dataset neu --out runs/neu-fcos --epochs 20
  transferline models register runs/neu-fcos --name neu-boxes

Holds out --holdout of each class's images for the test and --val-fraction of the rest for early
stopping (both drawn with --split-seed), trains FCOS on a timm feature pyramid, and writes the run
folder with metrics.json (test mAP@0.5, mAP@0.5:0.95, per class; the learning curve) and
report.html (test images with true and found boxes)."""


def _add_detect(isub) -> None:
    import argparse

    from .._ray import add_ray_arguments

    d = isub.add_parser("detect", help="train a defect detector with boxes (FCOS on a timm feature pyramid), test "
                                       "it on held-out images, write a run folder for `models register`",
                        epilog=DETECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--dataset", required=True, help="an images dataset with boxes (e.g. ingested with neu-det)")
    d.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    d.add_argument("--encoder", default="timm/tf_efficientnet_lite0", help="a timm image encoder")
    d.add_argument("--pretrained", default="imagenet",
                   help="imagenet (offline weights), a weights file or folder, a pretraining run folder, or none")
    d.add_argument("--init", metavar="RUN", help="start from this detector run (transfer from another line); "
                                                  "its classes, input size and encoder are kept")
    d.add_argument("--size", type=int, nargs=2, default=[224, 224], metavar=("H", "W"), help="input size (default 224 224)")
    d.add_argument("--epochs", type=int, default=12, help="at most this many epochs (default 12)")
    d.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    d.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the head (default 1e-3)")
    d.add_argument("--strategy", default="freeze_unfreeze", choices=["freeze_unfreeze", "full", "linear_probe", "l2sp"],
                   help="fine-tuning strategy of the encoder (default freeze_unfreeze)")
    d.add_argument("--freeze-epochs", type=int, default=1, help="freeze_unfreeze: epochs with the encoder frozen")
    d.add_argument("--encoder-lr-mult", type=float, default=0.1, help="encoder rate as a share of --lr (default 0.1)")
    d.add_argument("--per-class", type=int, metavar="K", help="few-shot: train on K images of each class")
    d.add_argument("--holdout", type=float, default=0.2, help="share of each class's images for the test (default 0.2)")
    d.add_argument("--val-fraction", type=float, default=0.1, help="share of the rest for early stopping (default 0.1)")
    d.add_argument("--patience", type=int, default=4, help="epochs without a better validation mAP@0.5 (default 4)")
    d.add_argument("--time-limit", type=float, metavar="S", help="start no epoch after S seconds of training")
    d.add_argument("--seed", type=int, default=0, help="head init, batch order, flips, few-shot draw (default 0)")
    add_ray_arguments(d, "Ray Train (data-parallel workers, gradients averaged every step)", "N training workers "
                      "(default: in this process)")
    d.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME, else "
                                                    "./transferline-data)")


def run_detect(args) -> int:
    from ..catalog import Catalog
    from ..errors import TransferlineError
    from .detection import DetectorConfig
    from .run import detect_dataset

    try:
        config = DetectorConfig(encoder=args.encoder, pretrained=None if args.pretrained == "none" else args.pretrained,
                                size=tuple(args.size), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                strategy=args.strategy, freeze_epochs=args.freeze_epochs,
                                encoder_lr_mult=args.encoder_lr_mult, patience=args.patience,
                                time_limit=args.time_limit, seed=args.seed)
    except ValueError as exc:
        raise TransferlineError(str(exc)) from None
    result = detect_dataset(Catalog(args.catalog), args.dataset, args.out, config, holdout=args.holdout,
                            val_fraction=args.val_fraction, per_class=args.per_class, init=args.init,
                            progress=sys.stderr.isatty(), say=print, workers=args.workers, address=args.address,
                            cpus_per_worker=args.cpus_per_worker)
    print(f"wrote {result['out']} (register it: transferline models register {result['out']} --name NAME)")
    return 0


def run_inspect(args) -> int:
    if args.action == "detect":
        return run_detect(args)
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
                         standardize=args.standardize, resize=args.resize, holdout=args.holdout,
                         progress=sys.stderr.isatty(), say=print,
                         workers=args.workers, address=args.address, cpus_per_worker=args.cpus_per_worker)
    print(f"wrote {result['out']} (register it: transferline models register {result['out']} --name NAME)")
    return 0
