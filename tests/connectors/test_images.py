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


def _neu(n: int = 4):
    """The first ``n`` vendored NEU crazing images (real JPEGs, 416x416) and their VOC files."""
    from transferline.sample_data import sample_path

    root = sample_path("neu")
    images = sorted((root / "IMAGES").glob("crazing_*.jpg"))[:n]
    return images, [root / "ANNOTATIONS" / f"{p.stem}.xml" for p in images]


def _mask_for(image, path) -> None:
    with Image.open(image) as img:
        Image.new("L", img.size, 255).save(path)


def test_nested_class_folders_with_masks_beside_and_in_folders(catalog, tmp_path):
    """<class>/Imgs/x.jpg with x.png beside it (magnetic tile), x_mask.png, and masks/ folders: masks
    are paired with their images, never ingested as images."""
    images, _ = _neu(6)
    for i, image in enumerate(images):
        cls = ["Blowhole", "Crack", "Free"][i % 3]
        folder = tmp_path / "tiles" / cls / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)
        if cls == "Blowhole":
            _mask_for(image, folder / f"{image.stem}.png")
        elif cls == "Crack":
            (folder / "masks").mkdir(exist_ok=True)
            _mask_for(image, folder / "masks" / f"{image.stem}_mask.png")
    _mask_for(images[0], tmp_path / "tiles" / "Free" / "Imgs" / "orphan_mask.png")
    plan = create_reader("images")(tmp_path / "tiles")
    assert plan.summary.splitlines()[:2] == ["found 6 image(s) in 3 class(es): Blowhole 2, Crack 2, Free 2",
                                             "  masks    4 paired with their images"]
    assert "1 mask(s) match no image, e.g. Free/Imgs/orphan_mask.png" in plan.summary
    catalog.ingest("tiles", plan)
    table = catalog.read("tiles", columns=["label", "source", "mask"]).to_pylist()
    assert {r["label"] for r in table if r["mask"]} == {"Blowhole", "Crack"}
    assert all(r["source"].endswith(".jpg") for r in table)
    with Image.open(io.BytesIO(next(r["mask"] for r in table if r["mask"]))) as mask:
        assert mask.size == (416, 416)  # the vendored NEU copy is 416x416
    assert catalog.manifest("tiles").roles["masks"] == ["mask"]


def test_label_level_and_images_without_class_folder(catalog, tmp_path):
    images, _ = _neu(2)
    for i, image in enumerate(images):
        folder = tmp_path / "line1" / f"cam{i}" / ("ok" if i else "defect")
        folder.mkdir(parents=True)
        shutil.copy(image, folder)
    shutil.copy(images[0], tmp_path / "loose.jpg")
    plan = create_reader("images")(tmp_path, label_level="3")
    assert plan.extra["classes"] == ["defect", "ok"]
    assert "skipped 1 image(s) with no class folder at level 3, e.g. loose.jpg" in plan.summary
    assert create_reader("images")(tmp_path, label_level=0).extra["classes"] == ["unlabelled"]
    with pytest.raises(DataError, match="--label-level must be 0"):
        create_reader("images")(tmp_path, label_level="first")


def test_mask_of_another_size_is_refused(catalog, tmp_path):
    images, _ = _neu(1)
    (tmp_path / "a").mkdir()
    shutil.copy(images[0], tmp_path / "a")
    Image.new("L", (20, 20)).save(tmp_path / "a" / f"{images[0].stem}_mask.png")
    with pytest.raises(DataError, match=r"_mask.png': mask is 20x20, its image crazing_1.jpg is 416x416"):
        catalog.ingest("m", create_reader("images")(tmp_path))
    assert_nothing_written(catalog, "m")


def test_voc_yolo_and_coco_boxes_agree(catalog, tmp_path):
    """The same real NEU boxes written as VOC, YOLO and COCO come back as the same pixel boxes."""
    import json
    import xml.etree.ElementTree as ET

    images, xmls = _neu(3)
    (tmp_path / "imgs" / "crazing").mkdir(parents=True)
    for image in images:
        shutil.copy(image, tmp_path / "imgs" / "crazing")
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "classes.txt").write_text("crazing\n")
    coco = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "crazing"}]}
    for i, (image, xml) in enumerate(zip(images, xmls)):
        root = ET.parse(xml).getroot()
        w, h = float(root.findtext("size/width")), float(root.findtext("size/height"))
        coco["images"].append({"id": i, "file_name": f"crazing/{image.name}", "width": w, "height": h})
        lines = []
        for obj in root.iter("object"):
            x0, y0, x1, y1 = (float(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            lines.append(f"0 {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} {(y1 - y0) / h}")
            coco["annotations"].append({"image_id": i, "category_id": 7, "bbox": [x0, y0, x1 - x0, y1 - y0]})
        (tmp_path / "yolo" / f"{image.stem}.txt").write_text("\n".join(lines))
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    voc_dir = xmls[0].parent
    got = {}
    for name, where in (("voc", voc_dir), ("yolo", tmp_path / "yolo"), ("coco", tmp_path / "coco.json")):
        catalog.ingest(name, create_reader("images")(tmp_path / "imgs", boxes=str(where)))
        got[name] = catalog.read(name, columns=["source", "boxes"]).sort_by("source").column("boxes").to_pylist()
    assert sum(len(b) for b in got["voc"]) >= 3
    assert got["voc"] == got["coco"]
    flat = lambda boxes: [(b["label"], b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for bs in boxes for b in bs]  # noqa: E731
    for a, b in zip(flat(got["voc"]), flat(got["yolo"])):  # YOLO's fractions round to within a pixel
        assert a[0] == b[0] and max(abs(x - y) for x, y in zip(a[1:], b[1:])) <= 1


@pytest.mark.parametrize("content, match", [
    ("0 0.5 0.5 0.2", r"row 1: expected 'class cx cy w h', found 4 values"),
    ("3 0.5 0.5 0.2 0.2", r"row 1: class 3 is not in classes.txt/data.yaml \(1 names\)"),
    ("0 1.5 0.5 0.2 0.2", r"row 1: YOLO coordinates are fractions"),
])
def test_bad_yolo_files(catalog, tmp_path, content, match):
    images, _ = _neu(1)
    (tmp_path / "imgs" / "c").mkdir(parents=True)
    shutil.copy(images[0], tmp_path / "imgs" / "c")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "classes.txt").write_text("crazing\n")
    (tmp_path / "labels" / f"{images[0].stem}.txt").write_text(content)
    with pytest.raises(DataError, match=match):
        catalog.ingest("y", create_reader("images")(tmp_path / "imgs", boxes=str(tmp_path / "labels")))
    assert_nothing_written(catalog, "y")


def test_boxes_from_mask_regions(catalog, tmp_path):
    """Each connected region of a mask (8-connected, 0/255 cut at half) of at least N pixels becomes
    a box of the image's class; smaller specks and defect-free masks give none."""
    import numpy as np

    images, _ = _neu(2)
    folder = tmp_path / "tiles"
    for cls, image in zip(("Blowhole", "Free"), images):
        (folder / cls).mkdir(parents=True)
        shutil.copy(image, folder / cls / image.name)
        mask = np.zeros((416, 416), np.uint8)
        if cls == "Blowhole":
            mask[10:20, 30:45] = 255  # 150 px
            mask[20:25, 45:50] = 200  # touches the first diagonally: the same region
            mask[300:302, 300:302] = 255  # a 4-pixel speck
            mask[100:140, 200:204] = 255
        Image.fromarray(mask).save(folder / cls / f"{image.stem}_mask.png")
    catalog.ingest("tiles", create_reader("images")(folder, boxes_from_masks="5"))
    rows = {r["label"]: r["boxes"] for r in catalog.read("tiles", columns=["label", "boxes"]).to_pylist()}
    assert rows["Free"] == []
    assert sorted((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in rows["Blowhole"]) == \
        [(30, 10, 50, 25), (200, 100, 204, 140)]
    assert {b["label"] for b in rows["Blowhole"]} == {"Blowhole"}
    with pytest.raises(DataError, match="--boxes-from-masks takes the smallest region"):
        create_reader("images")(folder, boxes_from_masks="0")
    (folder / "Blowhole" / f"{images[0].stem}_mask.png").unlink()
    (folder / "Free" / f"{images[1].stem}_mask.png").unlink()
    with pytest.raises(DataError, match="--boxes-from-masks: no image has a mask"):
        create_reader("images")(folder, boxes_from_masks=5)
