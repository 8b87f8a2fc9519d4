"""NEU steel-defect classification with few labels: k = 1, 5, 10 images per class and the full
train split, for ImageNet-initialized EfficientNet-Lite0 (frozen with a linear or a prototype head,
and fine-tuned), the same encoder after self-supervised pretraining on NEU's train images (each
visual objective, frozen), and random init (frozen, and fine-tuned).

NEU is split once, half of each class for testing (seed 0); every k-shot draw comes from the other
half, the same draw for every method of a seed. Writes ``benchmarks/results/vision_fewshot.json``
and ``.md``. Usage: ``python benchmarks/vision_fewshot.py [--seeds 0 1 2 3 4] [--objectives ...]``
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

PUBLISHED = {"10shot_vgg16_imagenet": 0.960, "full_resnet50": 0.994}  # percent / 100, see the issue


def split_manifest(images: Path, out: Path, seed: int = 0) -> Path:
    """A manifest putting half of each class (drawn with ``seed``) in ``test``, the rest in ``train``."""
    files = sorted(p for p in images.iterdir() if p.suffix.lower() == ".jpg")
    labels = np.array([p.stem.rsplit("_", 1)[0] for p in files])
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * len(files), dtype=object)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        split[members[: len(members) // 2]] = "test"
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for path, label, s in zip(files, labels, split):
            writer.writerow([path.relative_to(images.parent).as_posix(), label, s])
    return out


def catalog_of(root: Path, data: Path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader

    catalog = Catalog(root)
    src = data / "neu_det" / "NEU-DET"
    root.mkdir(parents=True, exist_ok=True)
    manifest = split_manifest(src / "IMAGES", root / "neu_split.csv")
    catalog.ingest("neu", create_reader("images")(src, manifest=str(manifest), plant="neu"))
    return catalog


def features(encoder, samples, batch: int = 64, tta: bool = False) -> np.ndarray:
    """Pooled features of every image; with ``tta`` averaged over the four flips of each image."""
    import torch

    encoder.eval()
    out = []
    with torch.no_grad():
        for b in samples.batches(batch):
            x = b.inputs["image"]
            views = [x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)] if tta else [x]
            out.append(torch.stack([encoder(v) for v in views]).mean(0).numpy())
    return np.concatenate(out)


def probe(train_x, train_y, test_x, test_y, head: str) -> tuple[float, float, np.ndarray]:
    """Accuracy, macro-F1 and confusion matrix of a linear or nearest-prototype head on frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix, f1_score

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    if head == "linear":
        pred = LogisticRegression(max_iter=3000, C=0.5).fit(a, train_y).predict(b)
    else:  # cosine similarity to each class mean
        unit = lambda v: v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)  # noqa: E731
        protos = unit(np.stack([a[train_y == c].mean(0) for c in np.unique(train_y)]))
        pred = np.unique(train_y)[(unit(b) @ protos.T).argmax(1)]
    return (float((pred == test_y).mean()), float(f1_score(test_y, pred, average="macro")),
            confusion_matrix(test_y, pred))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-vision"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--full-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the full-data runs")
    parser.add_argument("--objectives", nargs="+", default=["rotation", "masked", "contrastive", "gan"])
    parser.add_argument("--finetune-scratch-full", action="store_true", help="also fine-tune from random init "
                                                                             "on the full train split")
    parser.add_argument("--finetune-from", nargs="*", default=[],
                        help="also fine-tune from the encoders these self-supervised objectives left")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--ssl-epochs", type=int, default=3)
    parser.add_argument("--tta", action="store_true", help="frozen heads: features averaged over the four flips")
    args = parser.parse_args()
    env = started()
    import torch

    from transferline.data import ImageInput
    from transferline.data.factory import load_samples
    from transferline.encoders import create_encoder
    from transferline.train import load_config, train_loop
    from transferline.train.checkpoint import load_state

    torch.set_num_threads(2)
    catalog = catalog_of(args.catalog, args.data)
    spec = ImageInput(size=(args.size, args.size), channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    sized = [f"data.spec_options.size=[{args.size},{args.size}]"]
    train = load_samples(catalog, "neu", spec, split="train")
    test = load_samples(catalog, "neu", spec, split="test")
    print(f"NEU: {len(train)} train, {len(test)} test images", flush=True)

    encoders = {"imagenet": lambda: create_encoder("timm/tf_efficientnet_lite0", spec, pretrained="imagenet"),
                "scratch": lambda: create_encoder("timm/tf_efficientnet_lite0", spec)}
    pretraining = {}
    for objective in args.objectives:  # self-supervised on the train split's images, continued from ImageNet
        run_dir = args.catalog / f"ssl-{objective}"
        config = load_config(CONFIGS / "vision_ssl.yaml", [f"catalog={catalog.root}", f"objective={objective}",
                                                            "progress=false", f"run_dir={run_dir}", *sized,
                                                            f"epochs={args.ssl_epochs}"])
        t0 = time.perf_counter()
        result = train_loop(config)
        pretraining[objective] = {"val_loss": result["val_loss"], "epochs": result["epochs_run"],
                                  "seconds": time.perf_counter() - t0}
        print(f"ssl {objective}: val_loss {result['val_loss']:.4f} in {pretraining[objective]['seconds']:.0f} s",
              flush=True)

        def from_run(path=run_dir):
            encoder = create_encoder("timm/tf_efficientnet_lite0", spec)
            encoder.load_state_dict(load_state(path, "encoder")[0])
            return encoder
        encoders[f"imagenet+{objective}"] = from_run

    cached = {}
    for name, build in encoders.items():
        torch.manual_seed(0)
        encoder = build()
        t0 = time.perf_counter()
        cached[name] = (features(encoder, train, tta=args.tta), features(encoder, test, tta=args.tta))
        print(f"features {name}: {time.perf_counter() - t0:.0f} s", flush=True)

    shots = [*args.shots, "full"]
    details: dict = {"frozen": {}, "fine_tuned": {}, "ssl_pretraining": pretraining}
    for name, (f_train, f_test) in cached.items():
        for head in ("linear", "prototype"):
            for k in shots:
                runs, confusion = [], None
                for seed in (args.seeds if k != "full" else [0]):
                    index = np.arange(len(train)) if k == "full" else \
                        train.per_class_index(k, seed + 1000)  # the draw of target.per_class
                    acc, f1, confusion = probe(f_train[index], train.labels[index], f_test, test.labels, head)
                    runs.append({"accuracy": acc, "macro_f1": f1})
                key = f"{name}/{head}/{k}"
                details["frozen"][key] = {"accuracy": stats(runs, "accuracy"), "macro_f1": stats(runs, "macro_f1"),
                                          "confusion_last_seed": confusion.tolist()}
                print(f"frozen {key:40s} acc {details['frozen'][key]['accuracy']['mean']:.4f}", flush=True)

    ssl_runs = {f"imagenet+{o}": args.catalog / f"ssl-{o}" for o in args.finetune_from if o in args.objectives}
    for init in ("imagenet", *ssl_runs, "scratch"):
        for k in shots:
            if k == "full" and init == "scratch" and not args.finetune_scratch_full:
                continue
            seeds = args.full_seeds if k == "full" else args.seeds
            overrides = [f"catalog={catalog.root}", "progress=false", *sized]
            overrides += ["target.per_class=0", "target.labelled_units=0", "source.domains=[neu]",
                          "source.split=train", "data.val_fraction=0.1", "epochs=8"] if k == "full" else \
                [f"target.per_class={k}"]
            if init == "scratch":
                overrides += ["encoder.options.pretrained=null", "strategy=full", "optim.lr=0.001"]
            elif init in ssl_runs:
                overrides += [f"pretrained={ssl_runs[init]}", "encoder.options.pretrained=null"]
            runs = []
            for seed in seeds:
                t0 = time.perf_counter()
                config = load_config(CONFIGS / "vision_fewshot.yaml", [*overrides, f"seed={seed}"])
                metrics = train_loop(config)
                runs.append({"accuracy": metrics["test_accuracy"], "macro_f1": metrics["test_macro_f1"],
                             "seconds": time.perf_counter() - t0})
            key = f"{init}/{k}"
            details["fine_tuned"][key] = {m: stats(runs, m) for m in ("accuracy", "macro_f1", "seconds")}
            print(f"fine-tuned {key:20s} acc {details['fine_tuned'][key]['accuracy']['mean']:.4f}", flush=True)

    def best(k):
        pool = {f"frozen {key}": v for key, v in details["frozen"].items() if key.endswith(f"/{k}")}
        pool.update({f"fine-tuned {key}": v for key, v in details["fine_tuned"].items() if key.endswith(f"/{k}")})
        if not pool:
            return None, float("nan")
        name = max(pool, key=lambda n: pool[n]["accuracy"]["median"])
        return name, pool[name]["accuracy"]["median"]

    best10, best_full = best(10), best("full")
    summary = {"neu_10shot_accuracy": best10[1], "neu_10shot_method": best10[0],
               "neu_full_accuracy": best_full[1], "neu_full_method": best_full[0],
               "targets": {"neu_10shot_accuracy": 0.97, "neu_full_accuracy": 0.995}, "published": PUBLISHED,
               "image_size": args.size, "test_images": len(test)}
    rows = []
    for section in ("frozen", "fine_tuned"):
        for key, v in details[section].items():
            a = v["accuracy"]
            rows.append([section.replace("_", "-"), key, f"{a['median']:.4f}", f"{a['mean']:.4f} ± {a['std']:.4f}",
                         f"{v['macro_f1']['median']:.4f}", str(len(a["values"]))])
    table = markdown_table(["how", "encoder / head / k", "accuracy (median)", "mean ± std", "macro-F1 (median)",
                            "seeds"], rows)
    table += (f"\n\nNEU-DET, {len(test)} test images (half of each class, fixed), k train images per class drawn "
              f"per seed from the other half; {args.size} px, EfficientNet-Lite0 (timm tf_efficientnet_lite0). "
              f"Best 10-shot: {best10[0]} {best10[1]:.4f} (target 0.97; published VGG16 ImageNet features 0.960). "
              f"Best full: {best_full[0]} {best_full[1]:.4f} (target 0.995; published ResNet50 0.994).")
    write_results("vision_fewshot", {"seeds": args.seeds, "full_seeds": args.full_seeds, "shots": args.shots,
                                     "objectives": args.objectives, "size": args.size, "ssl_epochs": args.ssl_epochs,
                                     "finetune_from": args.finetune_from, "tta": args.tta, "configs": ["benchmarks/configs/vision_fewshot.yaml",
                                                                                "benchmarks/configs/vision_ssl.yaml"],
                                     "code": env["git_sha"]}, summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
