"""NEU-DET defect detection with boxes: FCOS on an EfficientNet-Lite0 feature pyramid, 2 CPU cores.

Split (fixed, stated in the results): 20 % of each class's 300 images held out for the test
(numpy seed 0), 10 % of the rest for early stopping (seed 1), the rest (1,296 images) to train.

* **Full data**: ImageNet-init backbone, freeze → unfreeze, trained for at most ``--epochs`` within
  ``--minutes`` of training; the learning curve (validation mAP per epoch) is kept.
* **Few-shot**: k images of each class (``--shots``), ImageNet-init vs a backbone pretrained by
  supervised classification on the *training* images' class labels only (no test image is seen),
  each over ``--seeds``.

mAP@0.5 and mAP@0.5:0.95 by torchmetrics (faster-coco-eval backend) on the 360 test images.
Published on NEU-DET: YOLOv8 trained on CPU 0.73 mAP@0.5, Faster R-CNN ResNet-34 0.748, best 0.869.

Writes ``benchmarks/results/detection.json`` and ``.md``.
Usage: ``python benchmarks/detection.py [--minutes 25] [--epochs 12] [--shots 10] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import CONFIGS, DEFAULT_DATA, markdown_table  # noqa: E402

TARGETS = {"neu_det_map50": 0.70}
PUBLISHED = {"yolov8_cpu_map50": 0.73, "faster_rcnn_resnet34_map50": 0.748, "best_map50": 0.869}


def _train_subset_folder(src: Path, names: list[str], out: Path) -> Path:
    """A NEU-DET folder holding only ``names`` (links to the images and their annotations)."""
    for sub in ("IMAGES", "ANNOTATIONS"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = Path(name).stem
        (out / "IMAGES" / name).symlink_to(src / "IMAGES" / name)
        xml = src / "ANNOTATIONS" / f"{stem}.xml"
        if xml.is_file():
            (out / "ANNOTATIONS" / f"{stem}.xml").symlink_to(xml)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-detection"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=12, help="full-data training: at most this many epochs")
    parser.add_argument("--minutes", type=float, default=25.0, help="full-data training: no epoch starts after this")
    parser.add_argument("--shots", type=int, nargs="+", default=[10], help="few-shot: images per class")
    parser.add_argument("--shot-epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    started()
    import torch

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data import ImageInput
    from transferline.data.factory import load_samples
    from transferline.inspection.detection import DetectorConfig, evaluate_detector, fit_detector
    from transferline.inspection.run import split_detection
    from transferline.train import load_config, train_loop

    torch.set_num_threads(2)
    args.catalog.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(args.catalog)
    src = args.data / "neu_det" / "NEU-DET"
    if not catalog.exists("neu"):
        catalog.ingest("neu", create_reader("neu-det")(src))
    spec = ImageInput(size=(args.size, args.size))
    samples = load_samples(catalog, "neu", spec)
    train, val, test = split_detection(samples, 0.2, 0.1, split_seed=0)
    print(f"NEU-DET: train {len(train)}, validation {len(val)}, test {len(test)} images "
          f"({sum(len(b) for b in test.boxes)} test boxes)", flush=True)

    # the steel backbone: supervised classification on the training images only
    if not catalog.exists("neu-train"):
        folder = _train_subset_folder(src, train.names, args.catalog / "neu-train-files")
        catalog.ingest("neu-train", create_reader("neu-det")(folder))
    run_dir = args.catalog / "neu-train-supervised"
    t0 = time.perf_counter()
    if not (run_dir / "encoder.safetensors").is_file():
        train_loop(load_config(CONFIGS / "vision_neu_pretrain.yaml",
                               [f"catalog={catalog.root}", "progress=false", f"run_dir={run_dir}",
                                "data.dataset=neu-train"]))
    pretraining_seconds = time.perf_counter() - t0
    print(f"NEU classification pretraining on the training images: {pretraining_seconds:.0f} s", flush=True)

    def run(label: str, train_set, config: DetectorConfig) -> dict:
        model, fit = fit_detector(train_set, val, config, report=lambda r: print(
            f"  {label} epoch {r['epoch']}: loss {r['train_loss']:.3f}, val mAP@0.5 {r['val_map50']:.3f}, "
            f"mAP@0.5:0.95 {r['val_map50_95']:.3f} ({r['seconds']:.0f} s)", flush=True))
        t0 = time.perf_counter()
        metrics = evaluate_detector(model, test, per_class=True)
        seconds_per_image = (time.perf_counter() - t0) / len(test)
        print(f"{label}: test mAP@0.5 {metrics['map50']:.4f}, mAP@0.5:0.95 {metrics['map50_95']:.4f} "
              f"(best epoch {fit['best_epoch']}/{fit['epochs_run']}, {fit['fit_seconds']:.0f} s)", flush=True)
        return {**{f"test_{k}": v for k, v in metrics.items()}, **fit, "test_seconds_per_image": seconds_per_image}

    full_config = DetectorConfig(size=spec.size, epochs=args.epochs, time_limit=args.minutes * 60, patience=args.epochs,
                                 seed=args.seeds[0])
    full = run("full data", train, full_config)
    curve = [{"epoch": r["epoch"], "minutes": sum(h["seconds"] for h in full["history"][:r["epoch"]]) / 60,
              "val_map50": r["val_map50"], "val_map50_95": r["val_map50_95"], "train_loss": r["train_loss"]}
             for r in full["history"]]

    backbones = {"imagenet": "imagenet", "neu-supervised": str(run_dir)}
    few: dict = {}
    for k in args.shots:
        for backbone, pretrained in backbones.items():
            runs = []
            for seed in args.seeds:
                config = DetectorConfig(size=spec.size, pretrained=pretrained, epochs=args.shot_epochs,
                                        patience=args.shot_epochs, seed=seed)
                runs.append({"seed": seed, **run(f"k={k} {backbone} seed {seed}", train.per_class(k, seed), config)})
            few[f"k{k}/{backbone}"] = {"runs": runs, "test_map50": spread([r["test_map50"] for r in runs]),
                                       "test_map50_95": spread([r["test_map50_95"] for r in runs])}

    summary = {"neu_det_map50": full["test_map50"], "neu_det_map50_95": full["test_map50_95"],
               "targets": TARGETS, "published": PUBLISHED,
               "target_met": full["test_map50"] >= TARGETS["neu_det_map50"],
               "training_minutes": full["fit_seconds"] / 60, "epochs_run": full["epochs_run"],
               "best_epoch": full["best_epoch"], "train_images": len(train), "test_images": len(test),
               "fewshot": {key: {"map50": v["test_map50"]["median"], "map50_95": v["test_map50_95"]["median"]}
                           for key, v in few.items()},
               "pretraining_seconds": pretraining_seconds}
    rows = [["full data, ImageNet init", "1", f"{full['test_map50']:.4f}", f"{full['test_map50_95']:.4f}",
             f"{full['epochs_run']} ({full['fit_seconds'] / 60:.0f} min)"]]
    for key, v in few.items():
        rows.append([key, str(len(v["runs"])),
                     f"{v['test_map50']['median']:.4f} ({v['test_map50']['min']:.4f}-{v['test_map50']['max']:.4f})",
                     f"{v['test_map50_95']['median']:.4f}",
                     f"{statistics_median([r['epochs_run'] for r in v['runs']])}"])
    table = markdown_table(["training", "seeds", "test mAP@0.5 (median, min-max)", "mAP@0.5:0.95", "epochs"], rows)
    table += "\n\nLearning curve (full data): " + ", ".join(
        f"epoch {c['epoch']} ({c['minutes']:.0f} min) {c['val_map50']:.3f}" for c in curve)
    table += ("\n\nPer class (full data, mAP@0.5:0.95): " + ", ".join(
        f"{c} {v:.3f}" for c, v in full["test_map50_95_per_class"].items()))
    table += (f"\n\nTarget mAP@0.5 >= {TARGETS['neu_det_map50']} ({'met' if summary['target_met'] else 'missed'}); "
              f"published: YOLOv8 on CPU 0.73, Faster R-CNN ResNet-34 0.748, best 0.869. FCOS on "
              f"EfficientNet-Lite0 stages 2-4 + FPN (64 channels), {args.size}x{args.size} px, 2 CPU threads.")
    config = {"size": args.size, "epochs": args.epochs, "minutes": args.minutes, "shots": args.shots,
              "shot_epochs": args.shot_epochs, "seeds": args.seeds, "detector": full_config.to_dict(),
              "split": "per class: 20 % test (numpy seed 0), then 10 % of the rest validation (seed 1), rest train",
              "pretraining": "configs/vision_neu_pretrain.yaml on the training images only (dataset neu-train)"}
    write_results("detection", config, summary, {"full": full, "learning_curve": curve, "fewshot": few}, table)
    return 0


def statistics_median(values: list) -> float:
    import statistics

    return statistics.median(values)


if __name__ == "__main__":
    raise SystemExit(main())
