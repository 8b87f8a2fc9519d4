"""Images: NEU-DET (1,800 images, VOC boxes), class folders, CSV manifests, corrupt files."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from transferline.connectors import create_reader
from transferline.errors import DataError

from ..conftest import assert_nothing_written


def test_neu_det(catalog, shared_data):
    result = catalog.ingest("neu", create_reader("neu-det")(shared_data / "neu_det"))
    assert result.new_rows == 1800
    table = catalog.read("neu", columns=["label", "width", "height", "boxes", "format"])
    frame = table.to_pandas()
    assert frame.label.value_counts().to_dict() == {c: 300 for c in
                                                    ["crazing", "inclusion", "patches", "pitted_surface",
                                                     "rolled-in_scale", "scratches"]}
    with Image.open(shared_data / "neu_det" / "NEU-DET" / "IMAGES" / "crazing_1.jpg") as img:
        size = img.size  # this copy is 416x416 while its XML says 200x200: boxes are rescaled
    assert set(frame.width) == {size[0]} and set(frame.height) == {size[1]} and set(frame.format) == {"jpeg"}
    boxes = [b for bs in table.column("boxes").to_pylist() for b in bs]
    assert len(boxes) == 4189
    assert all(0 <= b["xmin"] < b["xmax"] <= size[0] and 0 <= b["ymin"] < b["ymax"] <= size[1] for b in boxes)
    first = frame.index[frame.label == "crazing"][0]
    assert table.column("boxes")[int(first)].as_py()[0]["xmax"] > 300  # 193 of 200 px → ~402 of 416 px


def _png(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 6), color).save(buf, format="PNG")
    return buf.getvalue()


def test_class_folders_keep_original_bytes(catalog, tmp_path):
    for label in ("ok", "scratch"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        (tmp_path / "imgs" / label / f"{label}_1.png").write_bytes(_png(10))
    catalog.ingest("imgs", create_reader("images")(tmp_path / "imgs", plant="p1"))
    table = catalog.read("imgs")
    assert sorted(table.column("label").to_pylist()) == ["ok", "scratch"]
    assert table.column("image")[0].as_py() == _png(10)
    assert table.column("width")[0].as_py() == 8 and table.column("height")[0].as_py() == 6


def test_manifest_with_missing_image(catalog, tmp_path):
    (tmp_path / "a.png").write_bytes(_png(1))
    (tmp_path / "list.csv").write_text("path,label,split\na.png,ok,train\nb.png,bad,test\n")
    with pytest.raises(DataError) as err:
        create_reader("images")(tmp_path, manifest="list.csv")
    assert (err.value.row, err.value.field) == (3, "path")


def test_corrupt_image_is_refused(catalog, tmp_path, shared_data):
    folder = tmp_path / "imgs" / "crazing"
    folder.mkdir(parents=True)
    shutil.copy(shared_data / "neu_det" / "NEU-DET" / "IMAGES" / "crazing_1.jpg", folder)
    (folder / "crazing_2.jpg").write_bytes((folder / "crazing_1.jpg").read_bytes()[:700])
    with pytest.raises(DataError, match="corrupt or unreadable image") as err:
        catalog.ingest("imgs", create_reader("images")(tmp_path / "imgs"))
    assert err.value.file.endswith("crazing_2.jpg")
    assert_nothing_written(catalog, "imgs")
