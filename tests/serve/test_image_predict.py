"""Image models served: base64 PNG/JPEG or raw pixels in, classes with probabilities out, equal to
what the model computed in training on the same stored image; bad images refused naming the field."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from transferline.serve import Predictor
from transferline.serve.predictor import RequestError


@pytest.fixture(scope="module")
def served(image_run, tmp_path_factory):
    from transferline.model_registry import ModelRegistry

    registry = ModelRegistry(tmp_path_factory.mktemp("image-models") / "models")
    registry.register(image_run[0], "neu")
    return registry


def _b64(img: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_stored_images_served_as_trained(served, image_run):
    """Parity: the served probabilities of catalog images sent as files equal the training path's."""
    import json

    import torch
    from safetensors.torch import load_file

    from transferline.data import InputSpec
    from transferline.data.factory import load_samples
    from transferline.model_registry import build_inference_model

    run, catalog = image_run
    meta = json.loads((run / "model.json").read_text())
    spec = InputSpec.from_dict(meta["input"])
    samples = load_samples(catalog, "neu", spec["image"])
    index = np.arange(0, 120, 17)
    model = build_inference_model(meta, load_file(str(run / "model.safetensors")), spec)
    with torch.no_grad():
        trained = model(torch.from_numpy(samples.get(index))).numpy()
    files = [base64.b64encode(samples.images[int(i)].as_py()).decode() for i in index]  # the stored JPEGs
    reply = Predictor(served).predict("neu", images=files)
    np.testing.assert_allclose(reply["probabilities"], trained, atol=1e-5)
    assert reply["predictions"] == trained.argmax(-1).tolist()
    assert reply["labels"][0] in meta["output"]["classes"] and len(reply["probabilities"][0]) == 6
    gray = np.asarray(Image.open(io.BytesIO(samples.images[0].as_py())).convert("L"))
    by_pixels = Predictor(served).predict("neu", pixels=[gray.tolist()])
    by_file = Predictor(served).predict("neu", images=[_b64(Image.fromarray(gray))])  # PNG: lossless
    np.testing.assert_allclose(by_pixels["probabilities"], by_file["probabilities"], atol=1e-6)


@pytest.mark.parametrize("body,loc,match", [
    ({"images": ["%%%"]}, ["body", "images", 0], "not base64"),
    ({"images": [base64.b64encode(b"hello").decode()]}, ["body", "images", 0], "not an image file"),
    ({"images": [_b64(Image.new("L", (5000, 8)))]}, ["body", "images", 0], "5000x8 pixels"),
    ({"images": [_b64(Image.new("L", (32, 32)), "GIF")]}, ["body", "images", 0], "GIF images are not taken"),
    ({"pixels": [[[0, 300] * 8] * 16]}, ["body", "pixels", 0, 0, 1], "300 is not a pixel value"),
    ({"pixels": [[[0] * 16, [0] * 15]]}, ["body", "pixels", 0], "ragged"),
    ({"windows": [[[1.0]]]}, ["body", "windows"], "takes images, not sensor windows"),
    ({}, ["body", "images"], "this model takes images"),
])
def test_bad_images_name_the_field(served, body, loc, match):
    with pytest.raises(RequestError, match=match) as info:
        Predictor(served).predict("neu", **body)
    assert info.value.loc == loc


def test_series_models_refuse_images(image_run, registry):
    with pytest.raises(RequestError, match="takes sensor windows, not images") as info:
        Predictor(registry).predict("plant-a", images=["AAAA"])
    assert info.value.loc == ["body", "images"]
