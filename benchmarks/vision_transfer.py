"""Steel → magnetic tile: does knowing steel-surface defects (NEU) help classify another material's
defects from 5 labelled images per class? Magnetic tile's 5 defect classes (blowhole, break,
crack, fray, uneven) are split once, half of each class for testing; each seed draws 5 training
images per class from the other half. Encoders: ImageNet only, ImageNet then NEU supervised,
ImageNet then NEU self-supervised (each objective given), and random init; each frozen with a
linear head and fine-tuned (head first, then the encoder at a tenth of the rate).

Writes ``benchmarks/results/vision_transfer.json`` and ``.md``.
Usage: ``python benchmarks/vision_transfer.py [--seeds 0 1 2 3 4] [--ssl contrastive rotation]``
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import CONFIGS, DEFAULT_DATA, markdown_table, stats  # noqa: E402
from vision_fewshot import features, probe  # noqa: E402

MT_CLASSES = ["Blowhole", "Break", "Crack", "Fray", "Uneven"]


def mt_manifest(src: Path, out: Path, seed: int = 0) -> Path:
    """Defect images only (JPG; the PNG files beside them are pixel masks), half of each class in test."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in MT_CLASSES:
        files = sorted((src / f"MT_{name}").rglob("*.jpg"))
        test = set(rng.permutation(len(files))[: len(files) // 2].tolist())
        rows += [(f.relative_to(src).as_posix(), name.lower(), "test" if i in test else "train")
                 for i, f in enumerate(files)]
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-vision-transfer"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--ssl", nargs="+", default=["contrastive", "rotation"], help="NEU self-supervised objectives")
    args = parser.parse_args()
    env = started()
    import torch

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data import ImageInput
    from transferline.data.factory import load_samples
    from transferline.encoders import create_encoder
    from transferline.train import load_config, train_loop
    from transferline.train.checkpoint import load_state

    torch.set_num_threads(2)
    args.catalog.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(args.catalog)
    catalog.ingest("neu", create_reader("neu-det")(args.data / "neu_det"))
    src = args.data / "magnetic_tile"
    catalog.ingest("magnetic_tile", create_reader("images")(src, manifest=str(mt_manifest(src, args.catalog / "mt.csv")),
                                                            plant="mt"))
    spec = ImageInput(size=(128, 128), channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    train = load_samples(catalog, "magnetic_tile", spec, split="train")
    test = load_samples(catalog, "magnetic_tile", spec, split="test")
    print(f"magnetic tile: {len(train)} train, {len(test)} test images, classes {train.classes}", flush=True)

    runs = {}
    pretraining = {}
    common = [f"catalog={catalog.root}", "progress=false"]
    for name, config_name, extra in [("neu-supervised", "vision_neu_pretrain.yaml", []),
                                     *[(f"neu-{o}", "vision_ssl.yaml", [f"objective={o}", "source.split=all"])
                                       for o in args.ssl]]:
        run_dir = args.catalog / f"pre-{name}"
        t0 = time.perf_counter()
        result = train_loop(load_config(CONFIGS / config_name, [*common, *extra, f"run_dir={run_dir}"]))
        pretraining[name] = {"val_loss": result["val_loss"], "seconds": time.perf_counter() - t0}
        runs[name] = run_dir
        print(f"pretrained {name}: val_loss {result['val_loss']:.4f} in {pretraining[name]['seconds']:.0f} s",
              flush=True)

    def encoder_of(name: str):
        torch.manual_seed(0)
        if name in runs:
            encoder = create_encoder("timm/tf_efficientnet_lite0", spec)
            encoder.load_state_dict(load_state(runs[name], "encoder")[0])
            return encoder
        return create_encoder("timm/tf_efficientnet_lite0", spec, pretrained="imagenet" if name == "imagenet" else None)

    names = ["imagenet", *runs, "scratch"]
    details: dict = {"frozen": {}, "fine_tuned": {}, "pretraining": pretraining}
    for name in names:
        f_train, f_test = features(encoder_of(name), train), features(encoder_of(name), test)
        for head in ("linear", "prototype"):
            out = []
            for seed in args.seeds:
                index = train.per_class_index(args.shots, seed + 1000)  # the draw of target.per_class
                acc, f1, _ = probe(f_train[index], train.labels[index], f_test, test.labels, head)
                out.append({"accuracy": acc, "macro_f1": f1})
            details["frozen"][f"{name}/{head}"] = {m: stats(out, m) for m in ("accuracy", "macro_f1")}
            print(f"frozen {name}/{head}: macro-F1 {details['frozen'][f'{name}/{head}']['macro_f1']['mean']:.4f}",
                  flush=True)
        out = []
        for seed in args.seeds:
            start = ([f"pretrained={runs[name]}", "encoder.options.pretrained=null"] if name in runs else
                     ["encoder.options.pretrained=null", "strategy=full", "optim.lr=0.001"] if name == "scratch"
                     else [])
            t0 = time.perf_counter()
            m = train_loop(load_config(CONFIGS / "vision_transfer.yaml",
                                       [*common, *start, f"target.per_class={args.shots}", f"seed={seed}"]))
            out.append({"accuracy": m["test_accuracy"], "macro_f1": m["test_macro_f1"],
                        "seconds": time.perf_counter() - t0})
        details["fine_tuned"][name] = {m: stats(out, m) for m in ("accuracy", "macro_f1", "seconds")}
        print(f"fine-tuned {name}: macro-F1 {details['fine_tuned'][name]['macro_f1']['mean']:.4f}", flush=True)

    def f1(section: str, key: str) -> float:
        return details[section][key]["macro_f1"]["median"]

    pool = {(s, k): f1(s, k) for s in ("frozen", "fine_tuned") for k in details[s]}
    best = max(pool, key=pool.get)
    # the gain of NEU pretraining: the best NEU-pretrained encoder against ImageNet alone, same protocol
    gains = {f"{s}/{k}": pool[(s, k)] - pool[(s, "imagenet" if s == "fine_tuned" else f"imagenet/{k.split('/')[1]}")]
             for s, k in pool if k.startswith("neu-")}
    best_gain = max(gains, key=gains.get)
    summary = {"mt_5shot_macro_f1": pool[best], "mt_5shot_method": f"{best[0]} {best[1]}",
               "gain_vs_imagenet": gains[best_gain], "gain_method": best_gain, "gains": gains,
               "target_gain_vs_imagenet": 0.03, "test_images": len(test), "image_size": 128}
    rows = [[s.replace("_", "-"), k, f"{v['macro_f1']['median']:.4f}",
             f"{v['macro_f1']['mean']:.4f} ± {v['macro_f1']['std']:.4f}", f"{v['accuracy']['median']:.4f}"]
            for s in ("frozen", "fine_tuned") for k, v in details[s].items()]
    table = markdown_table(["how", "encoder / head", "macro-F1 (median)", "mean ± std", "accuracy (median)"], rows)
    table += (f"\n\nMagnetic tile, 5 defect classes, {args.shots} training images per class per seed (seeds "
              f"{args.seeds}), {len(test)} test images (half of each class, fixed); 128 px EfficientNet-Lite0. "
              f"Gain of NEU pretraining over ImageNet alone: {gains[best_gain]:+.4f} ({best_gain}; target +0.03).")
    write_results("vision_transfer", {"seeds": args.seeds, "shots": args.shots, "ssl": args.ssl,
                                      "configs": ["benchmarks/configs/vision_transfer.yaml",
                                                  "benchmarks/configs/vision_neu_pretrain.yaml",
                                                  "benchmarks/configs/vision_ssl.yaml"], "code": env["git_sha"]},
                  summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
