"""Box annotations in the three common layouts: Pascal VOC (.xml per image), YOLO (.txt per image,
class names in ``classes.txt`` or ``data.yaml``) and COCO (one .json).

Boxes come back per image path as dicts with label and corners. VOC boxes carry the size they were
annotated at (``_sx``/``_sy``) and YOLO boxes are fractions of the image (``_sx = _sy = 1``), so the
image reader scales both to the decoded image's pixels.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from transferline.errors import DataError


def read_boxes(where: Path, images: list[Path]) -> dict[Path, tuple[list[dict], Path | None]]:
    """``{image: (boxes, annotation file)}`` for ``images`` from ``where`` (folder or COCO file).
    Images without an annotation get no entry."""
    where = Path(where)
    if where.is_file() and where.suffix.lower() == ".json":
        return _coco(where, images)
    if not where.is_dir():
        raise DataError("box annotations not found (a folder of VOC .xml or YOLO .txt files, or a COCO .json)",
                        file=str(where))
    xmls, txts = list(where.glob("*.xml")), [p for p in where.glob("*.txt") if p.name != "classes.txt"]
    if xmls and txts:
        raise DataError("both VOC .xml and YOLO .txt files here; keep one format per folder", file=str(where))
    out = {}
    if txts:
        names = _yolo_names(where)
        for image in images:
            txt = where / f"{image.stem}.txt"
            if txt.is_file():
                out[image] = (_yolo(txt, names), txt)
        return out
    for image in images:
        xml = where / f"{image.stem}.xml"
        if xml.is_file():
            out[image] = (_voc(xml), xml)
    return out


def _voc(xml: Path) -> list[dict]:
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise DataError(f"malformed XML ({exc})", file=str(xml)) from None
    try:
        # NOTE: some published copies resize images but keep the original XML (NEU-DET: 416x416
        # JPEGs, 200x200 annotations): boxes are scaled by decoded size / annotated size.
        sx = float(root.findtext("size/width") or 0)
        sy = float(root.findtext("size/height") or 0)
    except ValueError:
        raise DataError("size needs numeric width and height", file=str(xml), field="size") from None
    boxes = []
    for obj in root.iter("object"):
        name, box = obj.findtext("name"), obj.find("bndbox")
        if box is None or name is None:
            raise DataError("object without name or bndbox", file=str(xml), field="object")
        try:
            coords = {k: float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")}
        except (TypeError, ValueError):
            raise DataError("bndbox needs numeric xmin, ymin, xmax, ymax", file=str(xml), field="bndbox") from None
        boxes.append({"label": name, **coords, "_sx": sx, "_sy": sy})
    return boxes


def _yolo_names(folder: Path) -> list[str] | None:
    for base in (folder, folder.parent):
        if (base / "classes.txt").is_file():
            return [n.strip() for n in (base / "classes.txt").read_text().splitlines() if n.strip()]
        if (base / "data.yaml").is_file():
            import yaml

            try:
                names = (yaml.safe_load((base / "data.yaml").read_text()) or {}).get("names")
            except yaml.YAMLError as exc:
                raise DataError(f"invalid YAML ({exc})", file=str(base / "data.yaml")) from None
            if isinstance(names, dict):
                names = [names[k] for k in sorted(names)]
            if not isinstance(names, list):
                raise DataError("data.yaml needs names: a list of class names", file=str(base / "data.yaml"),
                                field="names")
            return [str(n) for n in names]
    return None


def _yolo(txt: Path, names: list[str] | None) -> list[dict]:
    boxes = []
    for lineno, line in enumerate(txt.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DataError(f"expected 'class cx cy w h', found {len(fields)} values", file=str(txt), row=lineno)
        try:
            cls, cx, cy, w, h = int(fields[0]), *map(float, fields[1:])
        except ValueError:
            raise DataError("class must be an integer and cx cy w h numbers", file=str(txt), row=lineno) from None
        if not all(0 <= v <= 1 for v in (cx, cy, w, h)):
            raise DataError("YOLO coordinates are fractions of the image (0 to 1)", file=str(txt), row=lineno)
        if names is not None and not 0 <= cls < len(names):
            raise DataError(f"class {cls} is not in classes.txt/data.yaml ({len(names)} names)", file=str(txt),
                            row=lineno)
        boxes.append({"label": names[cls] if names else str(cls), "xmin": cx - w / 2, "xmax": cx + w / 2,
                      "ymin": cy - h / 2, "ymax": cy + h / 2, "_sx": 1.0, "_sy": 1.0})
    return boxes


def _coco(path: Path, images: list[Path]) -> dict:
    try:
        data = json.loads(path.read_text())
        cats = {c["id"]: c["name"] for c in data["categories"]}
        files = {im["id"]: (im["file_name"], im.get("width") or 0, im.get("height") or 0) for im in data["images"]}
        annotations = data["annotations"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"not a COCO annotation file ({type(exc).__name__}: {exc}); needs images, annotations "
                        "and categories", file=str(path)) from None
    by_name = {}
    for image in images:
        by_name.setdefault(image.name, []).append(image)
    out: dict[Path, tuple[list[dict], Path]] = {}
    for i, ann in enumerate(annotations):
        try:
            name, w, h = files[ann["image_id"]]
            x, y, bw, bh = map(float, ann["bbox"])
            label = cats[ann["category_id"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"annotation {i} refers to an unknown image or category, or has no 4-number bbox "
                            f"({exc})", file=str(path), field="annotations") from None
        hits = by_name.get(Path(name).name, [])
        if len(hits) > 1:
            hits = [h for h in hits if h.as_posix().endswith(name)] or hits
        if len(hits) != 1:
            continue  # an image not ingested (another split, or filtered out)
        out.setdefault(hits[0], ([], path))[0].append(
            {"label": label, "xmin": x, "ymin": y, "xmax": x + bw, "ymax": y + bh, "_sx": float(w), "_sy": float(h)})
    return out
