"""NEU surface defect database for hot-rolled steel strip (Song & Yan 2013; He et al. 2020).

1,800 200x200 images, six classes named by file-name prefix, with Pascal VOC boxes.
"""

from __future__ import annotations

from pathlib import Path

from transferline.catalog import IngestPlan
from transferline.errors import DataError

from ._common import require_dir
from .images import IMAGE_SUFFIXES, plan_images

CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]


def read_neu_det(src: str | Path, *, plant: str = "neu", asset: str = "strip-line") -> IngestPlan:
    """Plans the ingest of NEU-DET (``src`` holds ``IMAGES/`` and ``ANNOTATIONS/``, or ``NEU-DET/``)."""
    src = require_dir(Path(src), "NEU-DET (IMAGES/ and ANNOTATIONS/)")
    if (src / "NEU-DET").is_dir():
        src = src / "NEU-DET"
    images = src / "IMAGES"
    if not images.is_dir():
        raise DataError("expected an IMAGES/ folder", file=str(src))
    items = []
    for path in sorted(images.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label = path.stem.rsplit("_", 1)[0]
        if label not in CLASSES:
            raise DataError(f"file name does not start with a known class ({', '.join(CLASSES)})", file=str(path))
        items.append({"path": path, "label": label, "split": "all"})
    annotations = src / "ANNOTATIONS"
    plan = plan_images(src, items, reader="neu-det", plant=plant, asset=asset,
                       annotations=annotations if annotations.is_dir() else None)
    plan.extra["classes"] = CLASSES
    return plan
