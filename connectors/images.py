"""Folders of inspection images: class folders at any depth or a CSV manifest, masks paired with
their images, boxes from Pascal VOC, YOLO or COCO annotations.

Images are stored in their original encoding; each is opened and fully decoded once on ingest so
that a corrupt file is refused with its name rather than discovered during training.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.catalog.schemas import BOX, TIMESTAMP
from transferline.errors import DataError

from ._boxes import read_boxes
from ._common import digest, manifest_rows, parse_times, require_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
MASK_FOLDERS = {"masks", "mask", "ground_truth", "groundtruth", "gt"}
MASK_SUFFIXES = ("_mask", "-mask", "_masks", "_gt")


def read_image_folder(src: str | Path, *, manifest: str | None = None, annotations: str | None = None,
                      boxes: str | None = None, label_level: str | int | None = None, masks: str | None = None,
                      boxes_from_masks: str | int | None = None, plant: str = "default",
                      asset: str = "camera") -> IngestPlan:
    """Plans the ingest of an image folder.

    Args:
        src: a folder with a sub-folder per class at any depth (``<class>/Imgs/*.jpg``), or with
            images listed in ``manifest``.
        manifest: CSV with columns ``path`` and ``label`` (and optionally ``split``, ``mask``), relative to ``src``,
            and optionally ``ts`` (when the image was taken: ISO 8601, UTC unless it says otherwise)
            and ``plant`` / ``asset`` (where), so that a run can join images with the sensor
            windows and notes of the same machine by time.
        annotations: folder of Pascal VOC XML files named like the images (``crazing_1.xml``).
        boxes: box annotations: a folder of Pascal VOC ``.xml`` or YOLO ``.txt`` files (YOLO class
            names from ``classes.txt`` or ``data.yaml`` there or one level up), or a COCO ``.json``.
        label_level: which folder level under ``src`` names an image's class (1: the first, the
            default; 0: no classes, every image labelled ``unlabelled``).
        masks: how masks are told from images: a file-name suffix (``_mask``) or ``folder:NAME``;
            by default a ``_mask``/``-mask``/``_gt`` suffix, a folder named masks or ground_truth, or
            a ``.png`` beside a same-stem ``.jpg``. Each mask goes into the ``mask`` column of its image.
        boxes_from_masks: a pixel count N: each connected defect region of at least N pixels in an
            image's mask becomes a box of the image's class (for images without annotated boxes).
        plant: plant recorded for every image.
        asset: asset (camera, line) recorded for every image.
    """
    src = require_dir(Path(src), "images")
    if annotations and boxes:
        raise DataError("give --boxes or --annotations, not both", file=str(src))
    level = _level(label_level)
    min_pixels = _min_pixels(boxes_from_masks)
    if manifest:
        items, notes = _from_manifest(src, Path(manifest)), []
    else:
        items, notes = _from_folders(src, level, masks)
    return plan_images(src, items, reader="images", plant=plant, asset=asset,
                       annotations=Path(boxes or annotations) if (boxes or annotations) else None, notes=notes,
                       boxes_from_masks=min_pixels)


def _min_pixels(value) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise DataError(f"--boxes-from-masks takes the smallest region to box, in pixels (1, 2, ...); not {value!r}")
    return n


def mask_boxes(mask: bytes, label: str, min_pixels: int) -> list[dict]:
    """The bounding boxes of a mask's connected defect regions (8-connected, nonzero pixels; 0/255
    masks cut at half) of at least ``min_pixels`` pixels, labelled ``label``."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    with Image.open(io.BytesIO(mask)) as img:
        values = np.asarray(img.convert("L"))
    binary = values > (127 if values.max() > 1 else 0)
    regions, n = ndimage.label(binary, structure=np.ones((3, 3), bool))
    sizes = ndimage.sum_labels(binary, regions, index=np.arange(1, n + 1)) if n else []
    boxes = []
    for size, (rows, cols) in zip(sizes, ndimage.find_objects(regions)):
        if size >= min_pixels:
            boxes.append({"label": label, "xmin": int(cols.start), "ymin": int(rows.start), "xmax": int(cols.stop),
                          "ymax": int(rows.stop)})
    return boxes


def _level(value) -> int:
    if value is None:
        return 1
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = -1
    if level < 0:
        raise DataError(f"--label-level must be 0 (no classes) or a folder depth 1, 2, ...; not {value!r}")
    return level


def plan_images(src: Path, items: list[dict], *, reader: str, plant: str, asset: str,
                annotations: Path | None, notes: list[str] | None = None,
                boxes_from_masks: int | None = None) -> IngestPlan:
    """One part per label: ``items`` are dicts with path, label, split and optionally mask."""
    if not items:
        raise DataError("no images found (looked for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} in class folders at any depth)", file=str(src))
    boxes_of = read_boxes(annotations, [i["path"] for i in items]) if annotations else None
    by_label: dict[str, list[dict]] = {}
    for item in items:
        by_label.setdefault(item["label"], []).append(item)
    with_masks = any(i.get("mask") for i in items)  # then every part has the column: one schema
    if boxes_from_masks and not with_masks:
        raise DataError("--boxes-from-masks: no image has a mask", file=str(src))
    parts = []
    for label, group in sorted(by_label.items()):
        files = [g["path"] for g in group] + [g["mask"] for g in group if g.get("mask")]
        box_files = sorted({b for g in group for b in (boxes_of or {}).get(g["path"], ((), None))[1:] if b})
        where = [(g.get("plant"), g.get("asset"), g.get("ts")) for g in group]  # a manifest's, re-ingested when edited
        parts.append(Part(key=label, digest=digest(files + box_files, reader=reader, plant=plant, asset=asset,
                                                   **({"events": where} if any(any(w) for w in where) else {})),
                          file=str(group[0]["path"].parent),
                          load=_loader(group, boxes_of, plant, asset, with_masks, boxes_from_masks)))
    plan = IngestPlan(kind="images", reader=reader, source=str(src), parts=parts,
                      roles={"id": ["plant", "asset"], "labels": ["label", "boxes"],
                             **({"masks": ["mask"]} if with_masks else {})},
                      domain_columns=["plant"], extra={"classes": sorted(by_label)})
    n_masks = sum(1 for i in items if i.get("mask"))
    n_boxed = sum(1 for i in items if boxes_of and boxes_of.get(i["path"], ((),))[0])
    lines = [f"found {len(items)} image(s) in {len(by_label)} class(es): "
             + ", ".join(f"{k} {len(v)}" for k, v in sorted(by_label.items()))]
    if n_masks:
        lines.append(f"  masks    {n_masks} paired with their images")
    if boxes_of is not None:
        lines.append(f"  boxes    {sum(len(b[0]) for b in boxes_of.values())} in {n_boxed} image(s)")
    if boxes_from_masks:
        lines.append(f"  boxes    from the masks' regions of at least {boxes_from_masks} pixels")
    plan.summary = "\n".join(lines + [f"  {n}" for n in notes or []])
    return plan


def _loader(group: list[dict], boxes_of: dict | None, plant: str, asset: str,
            with_masks: bool, boxes_from_masks: int | None = None) -> Callable[[], pa.Table]:
    def load() -> pa.Table:
        rows = {k: [] for k in ("split", "plant", "asset", "ts", "image", "format", "width", "height", "label", "boxes",
                                "source", "mask")}
        for item in group:
            data = item["path"].read_bytes()
            fmt, width, height = _decode(item["path"], data)
            mask = None
            if item.get("mask"):
                mask = item["mask"].read_bytes()
                _, mw, mh = _decode(item["mask"], mask)
                if (mw, mh) != (width, height):
                    raise DataError(f"mask is {mw}x{mh}, its image {item['path'].name} is {width}x{height}",
                                    file=str(item["mask"]))
            boxes = []
            if boxes_of and item["path"] in boxes_of:
                found, box_file = boxes_of[item["path"]]
                boxes = [_scaled(b, width, height, box_file) for b in found]
            if boxes_from_masks and mask is not None and not boxes:
                boxes = mask_boxes(mask, item["label"], boxes_from_masks)
            rows["split"].append(item.get("split", "all"))
            rows["plant"].append(item.get("plant") or plant)
            rows["asset"].append(item.get("asset") or asset)
            rows["ts"].append(item.get("ts"))
            rows["image"].append(data)
            rows["format"].append(fmt)
            rows["width"].append(width)
            rows["height"].append(height)
            rows["label"].append(item["label"])
            rows["boxes"].append(boxes)
            rows["source"].append(item["path"].name)
            rows["mask"].append(mask)
        columns = {
            "split": rows["split"], "plant": rows["plant"], "asset": rows["asset"],
            "ts": pa.array(rows["ts"], TIMESTAMP), "image": pa.array(rows["image"], pa.binary()),
            "format": rows["format"], "width": pa.array(rows["width"], pa.int32()),
            "height": pa.array(rows["height"], pa.int32()), "label": rows["label"],
            "boxes": pa.array(rows["boxes"], pa.list_(BOX)), "source": rows["source"],
        }
        if with_masks:
            columns["mask"] = pa.array(rows["mask"], pa.binary())
        return pa.table(columns)
    return load


def _scaled(box: dict, width: int, height: int, file) -> dict:
    """A box in the image's own pixels: VOC boxes annotated at another size (``size`` given) are
    rescaled, YOLO's fractions multiplied out; every box must lie within the image."""
    sx, sy = box.get("_sx") or width, box.get("_sy") or height  # no size given: already in pixels
    fx, fy = width / sx, height / sy
    out = {"label": box["label"], "xmin": box["xmin"] * fx, "xmax": box["xmax"] * fx,
           "ymin": box["ymin"] * fy, "ymax": box["ymax"] * fy}
    out.update({k: int(round(out[k])) for k in ("xmin", "ymin", "xmax", "ymax")})
    if out["xmin"] >= out["xmax"] or out["ymin"] >= out["ymax"] or out["xmax"] <= 0 or out["ymax"] <= 0 \
            or out["xmin"] >= width or out["ymin"] >= height:
        raise DataError(f"box {out} is empty or outside the {width}x{height} image", file=str(file))
    out.update(xmin=max(out["xmin"], 0), ymin=max(out["ymin"], 0), xmax=min(out["xmax"], width),
               ymax=min(out["ymax"], height))
    return out


def _decode(path: Path, data: bytes) -> tuple[str, int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: a truncated file fails here, not at training time
            return (img.format or path.suffix.lstrip(".")).lower(), img.width, img.height
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
        raise DataError(f"corrupt or unreadable image ({exc})", file=str(path)) from None


def _from_manifest(src: Path, manifest: Path) -> list[dict]:
    manifest, _, rows = manifest_rows(src, manifest, "image")
    items = []
    for lineno, row, path in rows:
        mask = src / row["mask"] if row.get("mask") else None
        if mask is not None and not mask.is_file():
            raise DataError(f"mask {row['mask']!r} not found", file=str(manifest), row=lineno, field="mask")
        items.append({"path": path, "label": row["label"], "split": row.get("split") or "all", "mask": mask,
                      "ts": None, "plant": row.get("plant") or None, "asset": row.get("asset") or None})
    timed = [(i, lineno, row["ts"]) for i, (lineno, row, _) in enumerate(rows) if row.get("ts")]
    if timed:  # when each image was taken (UTC unless it says otherwise)
        at, linenos, cells = zip(*timed)
        for i, ts in zip(at, parse_times(cells, file=str(manifest), field="ts", rows=linenos).to_pylist()):
            items[i]["ts"] = ts
    return items


def _from_folders(src: Path, level: int, masks: str | None) -> tuple[list[dict], list[str]]:
    """Images under ``src`` at any depth, their class the folder at ``level``, masks paired by name."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(src).parts))
    is_mask = _mask_rule(masks, set(files))
    images = [p for p in files if not is_mask(p)]
    mask_files = [p for p in files if is_mask(p)]
    notes, items = [], []
    at_root = [p for p in images if len(p.relative_to(src).parts) <= level]
    if at_root and level:
        notes.append(f"skipped {len(at_root)} image(s) with no class folder at level {level}, e.g. "
                     f"{at_root[0].relative_to(src)} (--label-level 0 takes them, unlabelled)")
    for path in images:
        parts = path.relative_to(src).parts
        if level and len(parts) <= level:
            continue
        items.append({"path": path, "label": parts[level - 1] if level else "unlabelled", "split": "all"})
    paired, orphans = _pair_masks(src, items, mask_files, masks)
    if orphans:
        notes.append(f"{len(orphans)} mask(s) match no image, e.g. {orphans[0].relative_to(src)}; not ingested")
    if mask_files and not paired:
        notes.append("no mask could be paired: masks are named like their image plus a suffix (_mask), or sit in a "
                     "masks/ground_truth folder beside it, or are a .png beside a same-stem .jpg")
    return items, notes


def _mask_suffix(masks: str | None) -> tuple[str, ...]:
    return (masks,) if masks and not masks.startswith("folder:") else MASK_SUFFIXES


def _mask_rule(masks: str | None, files: set[Path]):
    """Whether a file is a mask: by suffix, by folder, or (default) a .png beside a same-stem image."""
    folders = {masks.split(":", 1)[1]} if masks and masks.startswith("folder:") else (
        set() if masks else MASK_FOLDERS)
    suffixes = _mask_suffix(masks)

    def rule(path: Path) -> bool:
        if any(part.lower() in folders or part in folders for part in path.parent.parts):
            return True
        if masks and masks.startswith("folder:"):
            return False
        if path.stem.lower().endswith(suffixes):
            return True
        if masks is None and path.suffix.lower() == ".png":  # e.g. magnetic tile: exp1_num_123.jpg + .png
            return any(path.with_suffix(s) in files for s in (".jpg", ".jpeg", ".bmp", ".JPG", ".JPEG"))
        return False
    return rule


def _pair_masks(src: Path, items: list[dict], mask_files: list[Path], masks: str | None):
    """Sets ``item["mask"]``: the mask in the same folder named stem+suffix or same stem, else in a
    mask folder with the same stem (and, where several, the same class folder)."""
    suffixes = _mask_suffix(masks)
    by_stem: dict[str, list[Path]] = {}
    for m in mask_files:
        stem = m.stem
        for suffix in suffixes:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        by_stem.setdefault(stem, []).append(m)
    used = set()
    for item in items:
        candidates = by_stem.get(item["path"].stem, [])
        same = [m for m in candidates if m.parent == item["path"].parent]
        near = [m for m in candidates if item["label"] in m.relative_to(src).parts]
        chosen = same or (near if len(near) == 1 else []) or (candidates if len(candidates) == 1 else [])
        if chosen:
            item["mask"] = chosen[0]
            used.add(chosen[0])
    return used, [m for m in mask_files if m not in used]
