"""Samples by catalog kind: images become image samples through the input spec's preprocessing;
a dataset of a kind training cannot read, or the wrong spec for its kind, is refused by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from transferline.connectors import create_reader
from transferline.data import ImageInput, get_window_spec
from transferline.data.factory import load_samples
from transferline.data.images import ImageSamples
from transferline.data.preprocess import build_preprocess


def _write_class_folders(root, n_per_class: int = 4) -> None:
    rng = np.random.default_rng(0)
    for c, label in enumerate(["crazing", "patches", "scratches"]):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            pixels = (rng.integers(0, 60, (20, 30)) + 80 * c).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{label}_{i}.png")


@pytest.fixture()
def images(catalog, tmp_path):
    _write_class_folders(tmp_path / "imgs")
    catalog.ingest("imgs", create_reader("images")(tmp_path / "imgs", plant="line-1"))
    return catalog


def test_images_dataset_gives_image_samples_preprocessed_as_served(images):
    spec = ImageInput(size=(16, 16), channels=1, mean=(0.5,), std=(0.5,))
    samples = load_samples(images, "imgs", spec)
    assert isinstance(samples, ImageSamples) and len(samples) == 12
    assert samples.classes == ["crazing", "patches", "scratches"] and samples.domain_names == ["line-1"]
    batches = list(samples.batches(5, shuffle=True, seed=1))
    assert [len(b) for b in batches] == [5, 5, 2] and batches[0].inputs["image"].shape == (5, 1, 16, 16)
    seen = torch.cat([b.target for b in batches]).sort().values
    assert seen.tolist() == sorted(samples.labels.tolist())  # one pass visits every image once
    # the training input of an image is what serving computes from its stored bytes
    first = samples.images[0].as_py()
    np.testing.assert_array_equal(samples.get([0])[0], build_preprocess(spec)([first])[0])
    assert np.asarray(Image.open(io.BytesIO(first))).shape == (20, 30)
    few = samples.per_class(2, seed=0)
    assert np.bincount(few.labels).tolist() == [2, 2, 2] and few.names[0].endswith(".png")
    assert len(list(samples.batches(5, drop_last=True))) == 2


def test_wrong_spec_or_kind_is_refused_by_name(images, tmp_path):
    with pytest.raises(ValueError, match="'imgs' holds images: it needs an image input spec, not window spec 'cwru'"):
        load_samples(images, "imgs", get_window_spec("cwru"))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "Aircraft_Annotation_DataFile.csv").write_text(
        "IDENT,PROBLEM,ACTION\n1,ENGINE ROUGH,REPLACED PLUG\n")
    images.ingest("notes", create_reader("maintnet")(tmp_path / "text"))
    with pytest.raises(ValueError, match="'notes' holds text: it needs a text input spec, not ImageInput"):
        load_samples(images, "notes", ImageInput())


def test_classes_outside_the_given_list_are_named(images):
    with pytest.raises(ValueError, match=r"class\(es\) \['scratches'\] outside the class list"):
        load_samples(images, "imgs", ImageInput(size=(8, 8)), classes=["crazing", "patches"])
