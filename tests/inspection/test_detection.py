"""Defect detection with boxes: boxes follow their images through every resize policy; a detector
learns to find planted defects; it saves, registers (the export finds the boxes the eager model
finds) and answers boxes in the sent image's own pixels; it trains on 2 Ray Train workers; bad
input is named."""

from __future__ import annotations

import base64
import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from transferline.data import ImageInput


def _encode(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _planted(n: int, seed: int, width: int = 96, height: int = 80):
    """Noisy grey plates, each with one bright square ("spot") or one dark bar ("scratch") at a random place."""
    import pyarrow as pa

    from transferline.data.images import ImageSamples

    rng = np.random.default_rng(seed)
    images, boxes, labels = [], [], []
    for i in range(n):
        img = np.clip(128 + rng.normal(0, 8, (height, width)), 0, 255)
        kind = i % 2
        w, h = (18, 18) if kind == 0 else (40, 8)
        x0, y0 = int(rng.integers(2, width - w - 2)), int(rng.integers(2, height - h - 2))
        img[y0:y0 + h, x0:x0 + w] = 250 if kind == 0 else 10
        images.append(_encode(img.astype(np.uint8)))
        name = ["spot", "scratch"][kind]
        boxes.append([{"label": name, "xmin": x0, "ymin": y0, "xmax": x0 + w, "ymax": y0 + h}])
        labels.append(kind)
    return ImageSamples(images=pa.array(images, pa.binary()), labels=np.array(labels), domains=np.zeros(n, np.int64),
                        assets=np.arange(n), classes=["spot", "scratch"], domain_names=["a"],
                        names=[f"plate_{i}.png" for i in range(n)], boxes=boxes, spec=ImageInput(size=(64, 64)))


@pytest.mark.parametrize("resize", ["stretch", "crop", "pad"])
def test_boxes_follow_their_image_through_every_resize_policy(resize):
    """The bright square's pixels in the model input lie exactly inside its transformed box."""
    samples = _planted(4, seed=1)
    samples = replace(samples, spec=ImageInput(size=(64, 64), channels=1, mean=(0.0,), std=(1.0,), resize=resize))
    x = samples.get(np.arange(4))[:, 0]
    targets = samples.get_boxes(np.arange(4))
    for i in (0, 2):  # the squares
        (x0, y0, x1, y1), = targets[i]["boxes"].tolist()
        ys, xs = np.nonzero(x[i] > 0.9)
        assert len(ys), "the square is in the input"
        assert x0 - 1.5 <= xs.min() and xs.max() + 1 <= x1 + 1.5 and y0 - 1.5 <= ys.min() and ys.max() + 1 <= y1 + 1.5
        assert targets[i]["labels"].tolist() == [0]


def test_neu_boxes_map_to_class_ids_and_unknown_labels_are_named(neu_sample):
    targets = neu_sample.get_boxes(np.arange(len(neu_sample)))
    assert sum(len(t["boxes"]) for t in targets) == sum(len(b) for b in neu_sample.boxes)
    for t in targets:
        assert ((t["boxes"] >= 0) & (t["boxes"] <= 224)).all() and (t["boxes"][:, 2:] > t["boxes"][:, :2]).all()
        assert set(t["labels"].tolist()) <= set(range(6))
    with pytest.raises(ValueError, match=r"image crazing_1.jpg: box label\(s\) \['crazing'\] outside the class list"):
        neu_sample.get_boxes([0], classes=["patches"])


@pytest.fixture(scope="module")
def neu_sample(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data.factory import load_samples
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("neu-cat"))
    catalog.ingest("neu", create_reader("neu-det")(sample_path("neu")))
    return load_samples(catalog, "neu", ImageInput(size=(224, 224)))


@pytest.fixture(scope="module")
def trained():
    """A detector trained on 48 planted plates (ImageNet EfficientNet-Lite0, 64x64)."""
    from transferline.inspection.detection import DetectorConfig, fit_detector

    torch.set_num_threads(2)
    train, val = _planted(48, seed=0), _planted(12, seed=1)
    config = DetectorConfig(size=(64, 64), epochs=6, batch_size=8, flips=False, patience=8, seed=0)
    model, fit = fit_detector(train, val, config)
    return model, fit, config


@pytest.mark.slow
def test_a_detector_learns_to_find_planted_defects(trained):
    from transferline.inspection.detection import evaluate_detector

    model, fit, _ = trained
    history = fit["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    test = evaluate_detector(model, _planted(16, seed=2), per_class=True)
    assert test["map50"] > 0.6, (test, [r["val_map50"] for r in history])
    assert set(test["map50_95_per_class"]) == {"spot", "scratch"}
    assert fit["val_map50"] == max(r["val_map50"] for r in history)  # the best epoch's weights are kept


@pytest.mark.slow
def test_saved_detector_registers_and_serves_boxes_in_the_sent_images_pixels(trained, tmp_path):
    from transferline.errors import TransferlineError
    from transferline.inspection.detection import detect
    from transferline.inspection.store import load_detector, save_detector
    from transferline.model_registry import ModelRegistry
    from transferline.serve import Predictor

    model, fit, config = trained
    spec = ImageInput(size=(64, 64))
    run = save_detector(tmp_path / "run", model, config, spec, dataset="plates", metrics={"history": fit["history"]})
    with pytest.raises(TransferlineError, match="exists"):
        save_detector(tmp_path / "run", model, config, spec, dataset="plates", metrics={})
    again, spec_again, meta = load_detector(run)
    assert meta["classes"] == ["spot", "scratch"] and spec_again == spec
    plates = _planted(4, seed=3)
    raw = [plates.images[i].as_py() for i in range(4)]
    eager = detect(model, raw, spec, score_thresh=0.0)
    assert detect(again, raw, spec, score_thresh=0.0) == eager

    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(run, "plates")
    assert entry.task["name"] == "detection" and entry.output["kind"] == "boxes"
    assert "model.onnx" in entry.files and (registry.path("plates", entry.version) / "model.onnx").is_file()
    from transferline.serve.predictor import load_model

    assert type(load_model(registry, entry).module).__name__ == "OnnxModule"  # served by onnxruntime
    served = Predictor(tmp_path / "models").predict("plates", images=[base64.b64encode(r).decode() for r in raw])
    for mine, theirs in zip(served["predictions"], eager):
        assert [b["label"] for b in mine] == [b["label"] for b in theirs]
        np.testing.assert_allclose([b["xyxy"] for b in mine], [b["xyxy"] for b in theirs], atol=0.05)
    # the best box of each plate lies on its defect, in the 96x80 image's own pixels
    for found, truth in zip(served["predictions"], plates.boxes):
        t = truth[0]
        assert found[0]["label"] == t["label"]
        np.testing.assert_allclose(found[0]["xyxy"], [t["xmin"], t["ymin"], t["xmax"], t["ymax"]], atol=8)


def test_bad_detector_input_is_named(neu_sample, tmp_path):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.errors import TransferlineError
    from transferline.inspection.detection import DetectorConfig
    from transferline.inspection.run import detect_dataset
    from transferline.inspection.store import load_detector
    from transferline.sample_data import sample_path

    with pytest.raises(ValueError, match="each a multiple of 32"):
        DetectorConfig(size=(200, 200))
    with pytest.raises(ValueError, match="increasing encoder stage"):
        DetectorConfig(stages=(4, 3))
    catalog = Catalog(tmp_path / "cat")
    catalog.ingest("tiles", create_reader("images")(sample_path("magnetic_tile"), plant="mt"))
    with pytest.raises(TransferlineError, match="'tiles' has no boxes"):
        detect_dataset(catalog, "tiles", tmp_path / "run", DetectorConfig(size=(64, 64), epochs=1))
    assert not (tmp_path / "run").exists()
    with pytest.raises(TransferlineError, match="holds no detector"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "model.json").write_text('{"kind": "anomaly"}')
        load_detector(tmp_path / "other")
    with pytest.raises(ValueError, match="stages \\[2, 3, 9\\]"):
        from transferline.inspection.detection import build_detector

        build_detector(DetectorConfig(size=(64, 64), stages=(2, 3, 9), pretrained=None), ["a"])


@pytest.mark.slow
def test_cli_trains_few_shot_from_the_catalog_and_transfers_a_detector(tmp_path, capsys):
    """`inspect detect` on the vendored NEU images (k=2 per class), then from that run to another
    selection (--init), writing run folders with metrics and report."""
    import json

    from transferline.cli import main

    home = ["--catalog", str(tmp_path / "cat")]
    from transferline.sample_data import sample_path

    assert main(["ingest", "neu-det", str(sample_path("neu")), "--name", "neu", *home]) == 0
    common = ["inspect", "detect", "--dataset", "neu", "--size", "64", "64", "--epochs", "1", "--per-class", "2", *home]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["train_images"] == 12 and 0 <= metrics["test_map50"] <= 1 and metrics["epochs_run"] == 1
    assert "true boxes green" in (tmp_path / "a" / "report.html").read_text()
    assert main([*common, "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["init"] == str(tmp_path / "a")
    assert "test mAP@0.5" in capsys.readouterr().out
    # steel → magnetic tiles: boxes from the tiles' masks, the steel detector retargeted to their classes
    assert main(["ingest", "images", str(sample_path("magnetic_tile")), "--name", "tiles", "--plant", "mt",
                 "--boxes-from-masks", "16", *home]) == 0
    assert main([*common[:3], "tiles", *common[4:], "--out", str(tmp_path / "c"), "--init", str(tmp_path / "a"),
                 "--holdout", "0.3"]) == 0
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    assert meta["classes"] == ["MT_Blowhole", "MT_Crack", "MT_Uneven"]


def test_retargeting_keeps_known_classes_and_the_box_branches():
    from transferline.inspection.detection import DetectorConfig, build_detector

    model = build_detector(DetectorConfig(size=(64, 64), pretrained=None), ["crazing", "patches"])
    head = model.fcos.head
    before = head.classification_head.cls_logits.weight.detach().clone()
    regression = head.regression_head.bbox_reg.weight.detach().clone()
    model.retarget(["patches", "blowhole", "crack"])
    after = head.classification_head.cls_logits.weight
    assert after.shape[0] == 4 and model.classes == ["patches", "blowhole", "crack"]
    torch.testing.assert_close(after[1], before[2])  # "patches" kept its output (slot 0 is the background)
    torch.testing.assert_close(head.regression_head.bbox_reg.weight, regression)
    model.eval()
    x = torch.zeros(1, 3, 64, 64)
    assert model.dense(x).shape[-1] == 1 + 3 + 5  # background, the 3 classes, box and centerness
    assert model.decoder(model.dense(x))[0]["labels"].tolist() == model(x)[0]["labels"].tolist()
