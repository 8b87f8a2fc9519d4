"""An anomaly model fitted on a catalog dataset's defect-free images and tested on the rest: what
`transferline inspect fit` and the demo run."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .anomaly import AnomalyConfig, evaluate_anomaly, fit_anomaly


def fit_dataset(catalog, dataset: str, good: list[str], out: str | os.PathLike, config: AnomalyConfig, *,
                size: tuple[int, int] = (224, 224), standardize: bool = False, resize: str = "stretch",
                holdout: float = 0.2,
                progress: bool = False, say: Callable[[str], None] = lambda line: None,
                workers: int | None = None, address: str | None = None, cpus_per_worker: float = 1) -> dict:
    """Fits on the images labelled ``good`` but a share ``holdout`` of them (drawn with the config's
    seed), tests on those and every other image (pixel AUROC where the dataset has masks), and
    writes the run folder ``out`` with ``report.html``. ``standardize`` brings each image to zero
    mean and unit variance before the backbone, ``resize`` is the input spec's (``pad`` keeps each
    image's aspect; pixel AUROC then leaves the padding out); the spec records both for serving. With
    ``workers``, the training images' patch features come from that many Ray actors reading the
    images through Ray Data. Returns the metrics, the fit's costs, ``out`` and the held-out good
    images' file names."""
    from ..data import ImageInput
    from ..data.factory import load_samples
    from ..errors import TransferlineError
    from .report import write_report
    from .store import save_anomaly

    spec = ImageInput(size=tuple(size), standardize=standardize, resize=resize)
    samples = load_samples(catalog, dataset, spec)
    unknown = sorted(set(good) - set(samples.classes))
    if unknown or not good:
        raise TransferlineError(f"--good {','.join(unknown) or '(none)'}: not a label of {dataset!r} "
                                f"(labels: {', '.join(samples.classes)})")
    is_good = np.isin(samples.labels, [samples.classes.index(g) for g in good])
    order = np.random.default_rng(config.seed).permutation(np.flatnonzero(is_good))
    n_test = int(round(holdout * len(order)))
    test = samples.subset(np.sort(np.concatenate([order[:n_test], np.flatnonzero(~is_good)])))
    say(f"{dataset}: fitting {config.method} on {len(order) - n_test} good images ({', '.join(good)}); testing on "
        f"{n_test} held-out good and {int((~is_good).sum())} other images")
    fit_numbers = np.sort(order[n_test:])
    ray_info = None
    if workers:
        import time

        from .anomaly import build_features, fit_on_features
        from .ray_features import patch_features_on_ray

        t0 = time.perf_counter()
        f, ray_info = patch_features_on_ray(catalog, dataset, spec, fit_numbers, config, workers=workers,
                                            address=address, cpus_per_worker=cpus_per_worker)
        model, info = fit_on_features(build_features(config, spec), f, config, spec.size)
        info.fit_seconds = time.perf_counter() - t0
    else:
        model, info = fit_anomaly(samples.subset(fit_numbers), config, progress=progress)
    defect = ~np.isin(test.labels, [samples.classes.index(g) for g in good])
    metrics: dict = {}
    if defect.any() and (~defect).any():
        metrics = evaluate_anomaly(model, test, defect, pixel=test.masks is not None)
        say(f"image AUROC {metrics['image_auroc']:.4f}"
            + (f", pixel AUROC {metrics['pixel_auroc']:.4f}" if "pixel_auroc" in metrics else "")
            + f"; at threshold {info.threshold:.4g}: {metrics['true_positive_rate']:.1%} of defective and "
              f"{metrics['false_positive_rate']:.1%} of good images flagged")
    fit = {k: v for k, v in info.to_dict().items() if k != "val_scores"}
    if ray_info:
        fit["ray"] = ray_info
    say(f"fit in {info.fit_seconds:.1f} s; {info.bank_entries:,} bank entries, {info.bank_bytes / 1e6:.1f} MB")
    out = save_anomaly(out, model, config, info, spec, dataset=dataset, good=list(good), metrics={**metrics, "fit": fit})
    if len(test):
        write_report(out / "report.html", model, test, metrics, defect, title=f"{dataset}: {config.method}",
                     low=info.map_low)
    return {"metrics": metrics, "fit": fit, "out": out, "test_good": int((~defect).sum()),
            "test_defective": int(defect.sum()),
            "held_out_good": [test.names[i] for i in np.flatnonzero(~defect)] if test.names else []}


def split_detection(samples, holdout: float = 0.2, val_fraction: float = 0.1, split_seed: int = 0):
    """``(train, val, test)``: ``holdout`` of each class's images for the test, then ``val_fraction``
    of the rest for early stopping, both drawn with ``split_seed`` (fixed across training seeds)."""
    rest, test = samples.holdout(holdout, split_seed)
    train, val = rest.holdout(val_fraction, split_seed + 1)
    return train, val, test


def detect_dataset(catalog, dataset: str, out: str | os.PathLike, config, *, holdout: float = 0.2,
                   val_fraction: float = 0.1, per_class: int | None = None, init: str | None = None,
                   progress: bool = False, say: Callable[[str], None] = lambda line: None,
                   workers: int | None = None, address: str | None = None, cpus_per_worker: float = 1) -> dict:
    """Trains a detector (:class:`~transferline.inspection.detection.DetectorConfig`) on an images
    dataset with boxes: the split of :func:`split_detection`, ``per_class`` images of each class
    for few-shot training, ``init`` a detector run to start from (transfer from another line). With
    ``workers``, trains data-parallel on that many Ray Train workers. Tests on the held-out images
    and writes the run folder ``out`` with ``report.html``. Returns the metrics and ``out``."""
    from ..data import ImageInput
    from ..data.factory import load_samples
    from ..errors import TransferlineError
    from .detection import box_classes, evaluate_detector, fit_detector
    from .report import write_detection_report
    from .store import load_detector, save_detector

    start = None
    spec = ImageInput(size=config.size)
    if init:
        start, spec, _ = load_detector(init)
    samples = load_samples(catalog, dataset, spec)
    if samples.boxes is None or not any(samples.boxes):
        raise TransferlineError(f"{dataset!r} has no boxes: ingest its images with their annotations")
    classes = box_classes(samples)
    train, val, test = split_detection(samples, holdout, val_fraction)
    if per_class:
        train = train.per_class(per_class, config.seed)
    say(f"{dataset}: training on {len(train)} images, validating on {len(val)}, testing on {len(test)} "
        f"({len(classes)} classes: {', '.join(classes)})")
    if workers:
        from .ray_detect import fit_detector_on_ray

        model, fit = fit_detector_on_ray(catalog, dataset, config, workers=workers, holdout=holdout,
                                         val_fraction=val_fraction, per_class=per_class, init=init,
                                         address=address, cpus_per_worker=cpus_per_worker)
    else:
        model, fit = fit_detector(train, val, config, classes=classes, model=start, progress=progress,
                                  report=lambda r: say(f"epoch {r['epoch']}: loss {r['train_loss']:.3f}, validation "
                                                       f"mAP@0.5 {r['val_map50']:.3f} ({r['seconds']:.0f} s)"))
    metrics = {f"test_{k}": v for k, v in evaluate_detector(model, test, per_class=True).items()}
    say(f"test mAP@0.5 {metrics['test_map50']:.3f}, mAP@0.5:0.95 {metrics['test_map50_95']:.3f} "
        f"(best epoch {fit['best_epoch']} of {fit['epochs_run']}, {fit['fit_seconds']:.0f} s)")
    metrics.update({k: v for k, v in fit.items()})
    metrics["init"] = init
    out = save_detector(out, model, config, spec, dataset=dataset, metrics=metrics)
    write_detection_report(out / "report.html", model, test, metrics, title=f"{dataset}: FCOS on {config.encoder}")
    return {"metrics": metrics, "out": out}
