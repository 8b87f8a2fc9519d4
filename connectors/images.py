"""Folders of inspection images: class-per-folder or a CSV manifest, optional Pascal VOC boxes.

Images are stored in their original encoding; each is opened and fully decoded once on ingest so
that a corrupt file is refused with its name rather than discovered during training.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.catalog.schemas import BOX, TIMESTAMP
from transferline.errors import DataError

from ._common import digest, require_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def read_image_folder(src: str | Path, *, manifest: str | None = None, annotations: str | None = None,
                      plant: str = "default", asset: str = "camera") -> IngestPlan:
    """Plans the ingest of an image folder.

    Args:
        src: a folder with one sub-folder per class, or with images listed in ``manifest``.
        manifest: CSV with columns ``path`` and ``label`` (and optionally ``split``), relative to ``src``.
        annotations: folder of Pascal VOC XML files named like the images (``crazing_1.xml``).
        plant: plant recorded for every image.
        asset: asset (camera, line) recorded for every image.
    """
    src = require_dir(Path(src), "images")
    items = _from_manifest(src, Path(manifest)) if manifest else _from_class_folders(src)
    return plan_images(src, items, reader="images", plant=plant, asset=asset,
                       annotations=Path(annotations) if annotations else None)


def plan_images(src: Path, items: list[dict], *, reader: str, plant: str, asset: str,
                annotations: Path | None) -> IngestPlan:
    """One part per label: ``items`` are dicts with path, label and split."""
    if not items:
        raise DataError("no images found", file=str(src))
    by_label: dict[str, list[dict]] = {}
    for item in items:
        by_label.setdefault(item["label"], []).append(item)
    parts = []
    for label, group in sorted(by_label.items()):
        files = [g["path"] for g in group]
        xmls = [_xml_for(annotations, p) for p in files] if annotations else []
        parts.append(Part(key=label, digest=digest(files + [x for x in xmls if x], reader=reader, plant=plant,
                                                   asset=asset),
                          file=str(files[0].parent), load=_loader(group, xmls, plant, asset)))
    return IngestPlan(kind="images", reader=reader, source=str(src), parts=parts,
                      roles={"id": ["plant", "asset"], "labels": ["label", "boxes"]}, domain_columns=["plant"],
                      extra={"classes": sorted(by_label)})


def _loader(group: list[dict], xmls: list, plant: str, asset: str) -> Callable[[], pa.Table]:
    def load() -> pa.Table:
        rows = {k: [] for k in ("split", "image", "format", "width", "height", "label", "boxes", "source")}
        for i, item in enumerate(group):
            data = item["path"].read_bytes()
            fmt, width, height = _decode(item["path"], data)
            rows["split"].append(item.get("split", "all"))
            rows["image"].append(data)
            rows["format"].append(fmt)
            rows["width"].append(width)
            rows["height"].append(height)
            rows["label"].append(item["label"])
            rows["boxes"].append(_voc_boxes(xmls[i], width, height) if xmls and xmls[i] else [])
            rows["source"].append(item["path"].name)
        n = len(group)
        return pa.table({
            "split": rows["split"], "plant": [plant] * n, "asset": [asset] * n,
            "ts": pa.nulls(n, TIMESTAMP), "image": pa.array(rows["image"], pa.binary()),
            "format": rows["format"], "width": pa.array(rows["width"], pa.int32()),
            "height": pa.array(rows["height"], pa.int32()), "label": rows["label"],
            "boxes": pa.array(rows["boxes"], pa.list_(BOX)), "source": rows["source"],
        })
    return load


def _decode(path: Path, data: bytes) -> tuple[str, int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: a truncated file fails here, not at training time
            return (img.format or path.suffix.lstrip(".")).lower(), img.width, img.height
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
        raise DataError(f"corrupt or unreadable image ({exc})", file=str(path)) from None


def _xml_for(annotations: Path, image: Path) -> Path | None:
    xml = annotations / f"{image.stem}.xml"
    return xml if xml.is_file() else None


def _voc_boxes(xml: Path, width: int, height: int) -> list[dict]:
    """Boxes in the image's own pixels.

    NOTE: some published copies resize images but keep the original XML (NEU-DET: 416x416 JPEGs,
    200x200 annotations); boxes are rescaled by the ratio of decoded size to annotated size.
    """
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise DataError(f"malformed XML ({exc})", file=str(xml)) from None
    try:
        sx = width / float(root.findtext("size/width") or width)
        sy = height / float(root.findtext("size/height") or height)
    except (ValueError, ZeroDivisionError):
        raise DataError("size needs numeric, non-zero width and height", file=str(xml), field="size") from None
    boxes = []
    for obj in root.iter("object"):
        name, box = obj.findtext("name"), obj.find("bndbox")
        if box is None or name is None:
            raise DataError("object without name or bndbox", file=str(xml), field="object")
        try:
            coords = {k: int(round(float(box.findtext(k)) * (sx if k[0] == "x" else sy)))
                      for k in ("xmin", "ymin", "xmax", "ymax")}
        except (TypeError, ValueError):
            raise DataError("bndbox needs numeric xmin, ymin, xmax, ymax", file=str(xml), field="bndbox") from None
        boxes.append({"label": name, **coords})
    return boxes


def _from_class_folders(src: Path) -> list[dict]:
    items = []
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                items.append({"path": path, "label": folder.name, "split": "all"})
    return items


def _from_manifest(src: Path, manifest: Path) -> list[dict]:
    manifest = manifest if manifest.is_absolute() else src / manifest
    if not manifest.is_file():
        raise DataError("manifest not found", file=str(manifest))
    items = []
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("path", "label"):
            if col not in (reader.fieldnames or []):
                raise DataError(f"manifest needs column {col!r} (has {reader.fieldnames})", file=str(manifest),
                                field=col)
        for lineno, row in enumerate(reader, start=2):
            path = src / (row["path"] or "")
            if not row["path"] or not path.is_file():
                raise DataError(f"image {row['path']!r} not found", file=str(manifest), row=lineno, field="path")
            if not row["label"]:
                raise DataError("empty label", file=str(manifest), row=lineno, field="label")
            items.append({"path": path, "label": row["label"], "split": row.get("split") or "all"})
    return items
