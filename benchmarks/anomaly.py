"""Magnetic tile anomaly detection from defect-free images only: PatchCore and PaDiM on two
backbones (EfficientNet-Lite0 with ImageNet weights; the same after supervised training on NEU
steel defects), fitted on 80 % of the 952 defect-free tiles and tested on the other 20 % plus
every defective tile (392). The split is drawn once (seed 0) and stated in the results; each
method runs with several seeds (the coreset's start, PaDiM's dimensions, the threshold's
validation images). Image AUROC, pixel AUROC over every test pixel against the masks (at the model's
input size), per defect class too, and the flag rates at the threshold set on defect-free
validation images; fit seconds and bank bytes per training image.

Tiles are photographed at varying exposure, so the models see standardized images (each image at
zero mean and unit variance: the input spec's ``standardize``); ``--raw-methods`` also run on the
raw images in the same run, as the baseline that shows what standardizing gives (keys ending
``/raw``).

Writes ``benchmarks/results/anomaly.json`` and ``.md``.
Usage: ``python benchmarks/anomaly.py [--seeds 0 1 2] [--size 224] [--coreset 0.01] [--raw-methods padim]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import CONFIGS, DEFAULT_DATA, markdown_table  # noqa: E402

TARGETS = {"mt_image_auroc": 0.95, "mt_pixel_auroc": 0.90}
GOOD, UNEVEN = "MT_Free", "MT_Uneven"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-anomaly"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--coreset", type=float, default=0.01, help="PatchCore: share of training patches kept")
    parser.add_argument("--methods", nargs="+", default=["patchcore", "padim"], help="on standardized images")
    parser.add_argument("--raw-methods", nargs="*", default=["padim"], help="also on raw images (the baseline)")
    parser.add_argument("--resize", default="stretch", choices=["stretch", "pad"],
                        help="tiles to the square input: stretched, or scaled whole and padded (padding left "
                             "out of pixel AUROC)")
    parser.add_argument("--dims", type=int, help="PaDiM: feature dimensions kept (default: AnomalyConfig's)")
    args = parser.parse_args()
    started()  # the sha of the code that runs
    import torch

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data import ImageInput
    from transferline.data.factory import load_samples
    from transferline.inspection.anomaly import (AnomalyConfig, anomaly_metrics, build_features, fit_on_features,
                                                 patch_features, score_features)
    from transferline.train import load_config, train_loop

    torch.set_num_threads(2)
    args.catalog.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(args.catalog)
    for name, reader, src, options in (("mt", "images", args.data / "magnetic_tile", {"plant": "mt"}),
                                       ("neu", "neu-det", args.data / "neu_det", {})):
        if not catalog.exists(name):
            catalog.ingest(name, create_reader(reader)(src, **options))
    spec = ImageInput(size=(args.size, args.size), standardize=True, resize=args.resize)
    samples = load_samples(catalog, "mt", spec)
    free = samples.classes.index(GOOD)
    good = np.random.default_rng(0).permutation(np.flatnonzero(samples.labels == free))
    cut = int(round(0.8 * len(good)))
    fit_pool = samples.subset(np.sort(good[:cut]))
    test = samples.subset(np.sort(np.concatenate([good[cut:], np.flatnonzero(samples.labels != free)])))
    defect = test.labels != free
    masks, valid = test.get_masks(np.arange(len(test))), test.get_valid(np.arange(len(test)))
    valid = None if valid.all() else valid
    print(f"magnetic tile: {len(fit_pool)} defect-free images to fit, test {int((~defect).sum())} defect-free + "
          f"{int(defect.sum())} defective", flush=True)

    run_dir = args.catalog / "neu-supervised"
    t0 = time.perf_counter()
    if not (run_dir / "encoder.safetensors").is_file():
        train_loop(load_config(CONFIGS / "vision_neu_pretrain.yaml",
                               [f"catalog={catalog.root}", "progress=false", f"run_dir={run_dir}"]))
    pretraining_seconds = time.perf_counter() - t0
    backbones = {"imagenet": "imagenet", "neu-supervised": str(run_dir)}

    details: dict = {}
    settings = [(backbone, standardize) for backbone in backbones for standardize in (True, False)
                if standardize or args.raw_methods]
    for backbone, standardize in settings:
        pretrained = backbones[backbone]
        features = build_features(AnomalyConfig(pretrained=pretrained), spec)
        view = replace(spec, standardize=standardize)
        t0 = time.perf_counter()
        f_fit = patch_features(features, replace(fit_pool, spec=view), 32)
        fit_feature_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        f_test = patch_features(features, replace(test, spec=view), 32)
        test_feature_s = time.perf_counter() - t0
        key = backbone if standardize else f"{backbone}/raw"
        print(f"{key}: patch features {tuple(f_fit.shape[1:])} in {fit_feature_s:.0f} s (fit images), "
              f"{test_feature_s:.0f} s (test images)", flush=True)
        for method in args.methods if standardize else args.raw_methods:
            runs = []
            for seed in args.seeds:
                config = AnomalyConfig(method=method, pretrained=pretrained, coreset=args.coreset, seed=seed,
                                       **({"dims": args.dims} if args.dims else {}))
                model, info = fit_on_features(features, f_fit, config, spec.size)
                t0 = time.perf_counter()
                scores, maps = score_features(model, f_test, maps=True)
                score_s = time.perf_counter() - t0
                m = anomaly_metrics(scores, defect, info.threshold, maps, masks, valid)
                per_class = {}
                for c, name in enumerate(test.classes):
                    if c == free:
                        continue
                    pick = (test.labels == c) | ~defect
                    per_class[name] = anomaly_metrics(scores[pick], defect[pick], info.threshold, maps[pick],
                                                      masks[pick], None if valid is None else valid[pick])
                # every tile but the Uneven ones: how far the pooled pixel AUROC rests on that one class
                pick = test.labels != test.classes.index(UNEVEN)
                m["pixel_auroc_without_uneven"] = anomaly_metrics(
                    scores[pick], defect[pick], info.threshold, maps[pick], masks[pick],
                    None if valid is None else valid[pick])["pixel_auroc"]
                runs.append({**m, "seed": seed, "per_class": per_class, "threshold": info.threshold,
                             "fit_seconds": fit_feature_s + info.fit_seconds, "bank_entries": info.bank_entries,
                             "bank_bytes_per_train_image": info.bank_bytes / info.train_images,
                             "test_seconds_per_image": (test_feature_s + score_s) / len(test)})
                print(f"{method}/{key} seed {seed}: image AUROC {m['image_auroc']:.4f}, pixel AUROC "
                      f"{m['pixel_auroc']:.4f}, flagged {m['true_positive_rate']:.1%} / {m['false_positive_rate']:.1%};"
                      f" fit {runs[-1]['fit_seconds']:.0f} s", flush=True)
            details[f"{method}/{key}"] = {"runs": runs, **{k: _spread([r[k] for r in runs]) for k in (
                "image_auroc", "pixel_auroc", "pixel_auroc_without_uneven", "true_positive_rate", "false_positive_rate", "fit_seconds",
                "bank_bytes_per_train_image", "test_seconds_per_image")}}

    best_image = max(details, key=lambda k: details[k]["image_auroc"]["median"])
    best_pixel = max(details, key=lambda k: details[k]["pixel_auroc"]["median"])
    summary = {"mt_image_auroc": details[best_image]["image_auroc"]["median"], "mt_image_auroc_method": best_image,
               "mt_pixel_auroc": details[best_pixel]["pixel_auroc"]["median"], "mt_pixel_auroc_method": best_pixel,
               "targets": TARGETS, "by_method": {k: {"image_auroc": v["image_auroc"]["median"],
                                                     "pixel_auroc": v["pixel_auroc"]["median"],
                                                     "fit_seconds": v["fit_seconds"]["median"],
                                                     "bank_bytes_per_train_image":
                                                         v["bank_bytes_per_train_image"]["median"]}
                                                 for k, v in details.items()},
               "fit_images": len(fit_pool), "test_good": int((~defect).sum()), "test_defective": int(defect.sum()),
               "image_size": args.size, "pretraining_seconds": pretraining_seconds}
    summary["mt_pixel_auroc_per_class"] = {  # each class's defective tiles with the defect-free ones
        c.removeprefix("MT_"): statistics.median(r["per_class"][c]["pixel_auroc"] for r in details[best_pixel]["runs"])
        for c in details[best_pixel]["runs"][0]["per_class"]}
    summary["mt_pixel_auroc_without_uneven"] = details[best_pixel]["pixel_auroc_without_uneven"]["median"]
    positive = masks if valid is None else masks & valid  # each class's share of the test's defect pixels
    summary["defect_pixel_share"] = {c.removeprefix("MT_"): float(positive[test.labels == i].sum() / positive.sum())
                                     for i, c in enumerate(test.classes) if i != free}
    for method in args.raw_methods:  # what standardizing the images gives, same method and backbone
        both = (f"{method}/imagenet", f"{method}/imagenet/raw")
        if all(k in details for k in both):
            summary[f"{method}_standardize_gain"] = {
                m: details[both[0]][m]["median"] - details[both[1]][m]["median"] for m in ("image_auroc", "pixel_auroc")}
    rows = []
    for key, v in details.items():
        classes = {c: statistics.median(r["per_class"][c]["image_auroc"] for r in v["runs"])
                   for c in v["runs"][0]["per_class"]}
        pixels = {c: statistics.median(r["per_class"][c]["pixel_auroc"] for r in v["runs"])
                  for c in v["runs"][0]["per_class"]}
        rows.append([key, f"{v['image_auroc']['median']:.4f} ({v['image_auroc']['min']:.4f}-{v['image_auroc']['max']:.4f})",
                     f"{v['pixel_auroc']['median']:.4f}", f"{v['pixel_auroc_without_uneven']['median']:.4f}",
                     f"{v['true_positive_rate']['median']:.1%}",
                     f"{v['false_positive_rate']['median']:.1%}", f"{v['fit_seconds']['median']:.0f}",
                     f"{v['bank_bytes_per_train_image']['median'] / 1e3:.1f}",
                     " ".join(f"{c.removeprefix('MT_')} {a:.3f}" for c, a in classes.items()),
                     " ".join(f"{c.removeprefix('MT_')} {a:.3f}" for c, a in pixels.items())])
    table = markdown_table(["method/backbone", "image AUROC (median, min-max)", "pixel AUROC",
                            "pixel AUROC without Uneven tiles", "defects flagged",
                            "good flagged", "fit s", "bank kB/image", "image AUROC per defect class",
                            "pixel AUROC per defect class"], rows)
    table += (f"\n\nTargets: image AUROC >= {TARGETS['mt_image_auroc']}, pixel AUROC >= {TARGETS['mt_pixel_auroc']}. "
              f"Fit on {len(fit_pool)} defect-free tiles (seed-0 draw of 80 %), test {int((~defect).sum())} defect-free + "
              f"{int(defect.sum())} defective; {args.size}x{args.size} px, {len(args.seeds)} seeds. Images standardized "
              "per image (zero mean, unit variance) except in rows ending /raw. "
              f"Tiles {'stretched to the square' if args.resize == 'stretch' else 'scaled whole and padded (padding left out of pixel AUROC)'}. "
              "Share of the test's defect pixels per class: " + ", ".join(
                  f"{c} {v:.1%}" for c, v in summary["defect_pixel_share"].items()) + ".")
    config = {"seeds": args.seeds, "size": args.size, "coreset": args.coreset, "methods": args.methods,
              "raw_methods": args.raw_methods, "standardize": "per image: each channel to zero mean, unit std",
              "backbones": list(backbones), "split": "defect-free tiles permuted with numpy seed 0: first 80 % fit "
              "(a tenth of those, per seed, sets the threshold), the rest and every defective tile test",
              "quantile": AnomalyConfig().quantile, "stages": list(AnomalyConfig().stages), "resize": args.resize,
              "dims": args.dims or AnomalyConfig().dims}
    write_results("anomaly", config, summary, details, table)
    return 0


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


if __name__ == "__main__":
    raise SystemExit(main())
