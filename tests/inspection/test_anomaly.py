"""Anomaly detection from defect-free images: both methods find a planted defect and say where it
is; coreset selection covers the data; masks follow the images' geometry; a fitted model saves,
reloads, registers (TorchScript checked against eager) and answers with heat maps; on the real
magnetic-tile data both methods rank defective images above defect-free ones."""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from transferline.data import ImageInput

SIZE = 128


def _texture(rng, defect: bool = False) -> np.ndarray:
    """A grey striped surface with noise; a defect is a bright 12x12 square at rows 80-92, columns 40-52."""
    y = np.arange(SIZE)[:, None] * np.ones((1, SIZE))
    img = 120 + 30 * np.sin(y / 3) + rng.normal(0, 4, (SIZE, SIZE))
    if defect:
        img[80:92, 40:52] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


def _samples(images: list[np.ndarray]):
    import pyarrow as pa

    from transferline.data.images import ImageSamples

    n = len(images)
    encoded = []
    for img in images:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        encoded.append(buf.getvalue())
    return ImageSamples(images=pa.array(encoded, pa.binary()), labels=np.zeros(n, np.int64),
                        domains=np.zeros(n, np.int64), assets=np.arange(n), classes=["good"], domain_names=["a"],
                        spec=ImageInput(size=(SIZE, SIZE), channels=3))


@pytest.mark.parametrize("method", ["patchcore", "padim"])
def test_a_planted_defect_scores_highest_and_is_located(method):
    from transferline.inspection import AnomalyConfig, fit_anomaly, score_images

    rng = np.random.default_rng(0)
    good = _samples([_texture(rng) for _ in range(24)])
    model, info = fit_anomaly(good, AnomalyConfig(method=method, coreset=0.25, val_fraction=0.25, sigma=2.0))
    assert info.train_images == 18 and info.val_images == 6 and info.bank_bytes > 0
    test = _samples([_texture(rng) for _ in range(6)] + [_texture(rng, defect=True)])
    scores, maps = score_images(model, test, maps=True)
    assert scores[-1] > scores[:-1].max() and scores[-1] > info.threshold
    peak = np.unravel_index(maps[-1].argmax(), maps[-1].shape)
    assert 70 <= peak[0] <= 102 and 30 <= peak[1] <= 62, peak  # on the square, within a patch or so


def test_greedy_coreset_takes_one_point_of_each_cluster():
    from transferline.inspection.anomaly import greedy_coreset

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 50
    points = torch.cat([c + torch.randn(200, 16, generator=g) for c in centres])
    chosen = greedy_coreset(points, 5, projection=8, seed=1)
    assert sorted((chosen // 200).tolist()) == [0, 1, 2, 3, 4]


def test_masks_follow_the_image_geometry(mt_sample):
    """Masks are resized and cropped as their images are; a defect-free image's mask is empty."""
    samples = mt_sample
    free = samples.classes.index("MT_Free")
    masks = samples.get_masks(np.arange(len(samples)))
    assert masks.shape == (len(samples), 96, 96)
    assert not masks[samples.labels == free].any() and masks[samples.labels != free].any(axis=(1, 2)).all()
    cropped = replace(samples, spec=replace(samples.spec, resize="crop"))
    assert cropped.get_masks([0]).shape == (1, 96, 96)


@pytest.fixture(scope="module")
def mt_sample(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data.factory import load_samples
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("mt-cat"))
    catalog.ingest("mt", create_reader("images")(sample_path("magnetic_tile"), plant="mt"))
    return load_samples(catalog, "mt", ImageInput(size=(96, 96)))


@pytest.mark.parametrize("method,standardize", [("patchcore", False), ("padim", True)])
def test_saved_model_reloads_registers_and_answers_with_heat_maps(mt_sample, tmp_path, method, standardize):
    from PIL import Image

    from transferline.errors import TransferlineError
    from transferline.inspection import AnomalyConfig, evaluate_anomaly, fit_anomaly
    from transferline.inspection.store import image_spec, load_anomaly, save_anomaly
    from transferline.model_registry import ModelRegistry
    from transferline.serve import Predictor

    samples = replace(mt_sample, spec=replace(mt_sample.spec, standardize=standardize))
    free = samples.classes.index("MT_Free")
    good = np.flatnonzero(samples.labels == free)
    test = samples.subset(np.concatenate([good[12:], np.flatnonzero(samples.labels != free)]))
    config = AnomalyConfig(method=method, coreset=0.2, val_fraction=0.25)
    model, info = fit_anomaly(samples.subset(good[:12]), config)
    metrics = evaluate_anomaly(model, test, test.labels != free)
    assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1 and metrics["defective"] == 6
    run = save_anomaly(tmp_path / "run", model, config, info, samples.spec, dataset="mt", good=["MT_Free"],
                       metrics=metrics)
    with pytest.raises(TransferlineError, match="exists"):
        save_anomaly(tmp_path / "run", model, config, info, samples.spec, dataset="mt", good=["MT_Free"], metrics={})
    again, meta = load_anomaly(run)
    x = torch.from_numpy(test.get(np.arange(len(test))))
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], model(x)[0])
    assert meta["threshold"] == pytest.approx(info.threshold)
    assert image_spec(meta) == samples.spec  # standardize travels with the model into serving

    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(run, "tiles")
    assert entry.task["name"] == "anomaly" and entry.output["kind"] == "anomaly" and "model.onnx" in entry.files
    assert entry.output["threshold"] == pytest.approx(info.threshold) and entry.metrics["fit"]["bank_bytes"] > 0
    raw = [base64.b64encode(bytes(test.images[i].as_py())).decode() for i in range(len(test))]
    answer = Predictor(registry).predict("tiles", images=raw, heatmap=True)
    with torch.no_grad():
        eager = model(x)[0].numpy()
    np.testing.assert_allclose(answer["predictions"], eager, rtol=1e-2, atol=0.05)  # served (onnxruntime) = eager
    assert answer["anomalous"] == (eager > info.threshold).tolist()
    png = Image.open(io.BytesIO(base64.b64decode(answer["heatmaps"][-1])))
    assert png.size == (96, 96) and png.mode == "RGB"
    assert "heatmaps" not in Predictor(registry).predict("tiles", images=raw[:1])


def test_heat_maps_are_refused_for_other_models(tmp_path):
    from transferline.model_registry import ModelEntry
    from transferline.serve.predictor import PredictRequest, RequestError, validate

    entry = ModelEntry(name="neu", version=1, task={"name": "fault_diagnosis"}, modality="image", encoder={},
                       input={"image": {"size": [32, 32]}}, output={"kind": "class", "classes": ["a"]}, lineage={},
                       metrics={}, created="", content_hash="")
    with pytest.raises(RequestError) as caught:
        validate(entry, PredictRequest(images=["x"], heatmap=True))
    assert caught.value.loc == ["body", "heatmap"] and "anomaly models" in caught.value.message


def test_bad_configs_are_named():
    from transferline.inspection import AnomalyConfig

    with pytest.raises(ValueError, match="anomaly method must be one of patchcore, padim, not 'knn'"):
        AnomalyConfig(method="knn")
    with pytest.raises(ValueError, match="coreset"):
        AnomalyConfig(coreset=0)


DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "magnetic_tile"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/magnetic_tile is not on this machine")
@pytest.mark.parametrize("method", ["patchcore", "padim"])
def test_real_magnetic_tiles_rank_defects_above_good_ones(tmp_path_factory, method):
    """Fit on 120 defect-free tiles; 40 others and every 4th defective tile: well above chance."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data.factory import load_samples
    from transferline.inspection import AnomalyConfig, evaluate_anomaly, fit_anomaly

    root = tmp_path_factory.getbasetemp() / "mt-real"
    catalog = Catalog(root)
    if not catalog.exists("mt"):
        catalog.ingest("mt", create_reader("images")(DATA, plant="mt"))
    samples = load_samples(catalog, "mt", ImageInput(size=(128, 128)))
    free = samples.classes.index("MT_Free")
    good = np.random.default_rng(0).permutation(np.flatnonzero(samples.labels == free))
    test = samples.subset(np.sort(np.concatenate([good[120:160], np.flatnonzero(samples.labels != free)[::4]])))
    model, _ = fit_anomaly(samples.subset(np.sort(good[:120])), AnomalyConfig(method=method, coreset=0.05))
    metrics = evaluate_anomaly(model, test, test.labels != free)
    assert metrics["image_auroc"] > 0.7 and metrics["pixel_auroc"] > 0.65, metrics


def test_pixel_auroc_leaves_the_padding_out(mt_sample):
    """With ``resize="pad"`` the padding around a tile is neither image nor defect: pixel AUROC
    counts only the pixels that show the tile, so padding scored low cannot inflate it."""
    from transferline.inspection.anomaly import anomaly_metrics

    padded = replace(mt_sample, spec=replace(mt_sample.spec, resize="pad"))
    index = np.arange(len(padded))
    valid, masks = padded.get_valid(index), padded.get_masks(index)
    assert mt_sample.get_valid(index).all()  # stretched: every pixel is the image
    assert (~valid).any() and not (masks & ~valid).any()
    for row in np.flatnonzero((~valid).any(axis=(1, 2))):  # the tile is one centred rectangle
        rows, cols = np.flatnonzero(valid[row].any(1)), np.flatnonzero(valid[row].any(0))
        assert valid[row][rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert valid[row].sum() == len(rows) * len(cols)
    rng = np.random.default_rng(0)
    maps = np.where(valid, rng.random(masks.shape), -1.0)  # uninformative on the tile, lowest on the padding
    defect = masks.any(axis=(1, 2))
    counted = anomaly_metrics(rng.random(len(index)), defect, 0.5, maps, masks)["pixel_auroc"]
    left_out = anomaly_metrics(rng.random(len(index)), defect, 0.5, maps, masks, valid)["pixel_auroc"]
    assert abs(left_out - 0.5) < 0.05 < counted - 0.5
