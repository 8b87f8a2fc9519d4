"""Image samples from an ``images`` catalog dataset: encoded images with class labels, boxes,
domains and assets, decoded and preprocessed per batch by the input spec's preprocessing (the one
serving uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import Catalog
from .batch import SampleBatches
from .windows import event_keys
from .inputs import ImageInput
from .preprocess import ImagePreprocess

COLUMNS = ["plant", "asset", "ts", "image", "label", "boxes", "source"]


@dataclass
class ImageSamples(SampleBatches):
    """Images with one entry per sample in every per-sample array; ``images`` holds encoded bytes.

    Offers what training needs of :class:`~transferline.data.Windows`: ``len``, :meth:`batches`,
    :meth:`subset`, :meth:`draw` / :meth:`sample`, labels, domains, assets and class names.
    """

    images: pa.Array  # binary [N]
    labels: np.ndarray  # int64 [N], index into classes
    domains: np.ndarray  # int64 [N], index into domain_names
    assets: np.ndarray  # int64 [N]: each image is its own unit (few-shot draws count images)
    spec: ImageInput
    classes: list[str] = field(default_factory=list)
    domain_names: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # source file of each image
    boxes: list | None = None  # per image: list of {label, xmin, ymin, xmax, ymax}
    masks: list | None = None  # per image: an encoded pixel mask (nonzero = defect) or None; None if the dataset has none
    units: np.ndarray | None = None  # object [N]: the plant/asset each image was taken at
    times: np.ndarray | None = None  # int64 [N]: when (µs since the epoch, UTC; NO_TIME: not recorded)
    modality = "image"

    def __post_init__(self) -> None:
        self._preprocess = ImagePreprocess(self.spec)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.spec.channels, *self.spec.size)

    def get(self, index) -> np.ndarray:
        """Model input ``[B, C, H, W]`` float32 for the images at ``index``."""
        index = np.atleast_1d(np.asarray(index))
        return self._preprocess([self.images[int(i)].as_py() for i in index])

    def subset(self, mask) -> "ImageSamples":
        index = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        take = pa.array(index, pa.int64())
        return replace(self, images=self.images.take(take), labels=self.labels[index], domains=self.domains[index],
                       assets=self.assets[index], names=[self.names[i] for i in index] if self.names else [],
                       boxes=[self.boxes[i] for i in index] if self.boxes is not None else None,
                       masks=[self.masks[i] for i in index] if self.masks is not None else None,
                       units=self.units[index] if self.units is not None else None,
                       times=self.times[index] if self.times is not None else None)

    def get_masks(self, index) -> np.ndarray:
        """Pixel masks ``[B, H, W]`` bool at the model's input size, resized and cropped or padded
        exactly as the images are (an image without a mask: all False)."""
        from .preprocess import ImagePreprocess

        index = np.atleast_1d(np.asarray(index))
        if self.masks is None:
            raise ValueError("this image dataset has no masks: ingest the images with their masks")
        geometry = ImagePreprocess(replace(self.spec, channels=1, mean=(0.0,), std=(1.0,), standardize=False))
        h, w = self.spec.size

        def one(mask) -> np.ndarray:
            if mask is None:
                return np.zeros((h, w), bool)
            from .preprocess import _to_pil

            values = np.asarray(_to_pil(mask).convert("L"))
            # 0/255 masks (edges anti-aliased or compressed: cut at half) and 0/1 masks alike
            binary = (values > (127 if values.max() > 1 else 0)).astype(np.uint8) * 255
            return geometry.one(binary)[0] > 0.5

        return np.stack([one(self.masks[int(i)]) for i in index]) if len(index) else np.zeros((0, h, w), bool)

    def get_valid(self, index) -> np.ndarray:
        """``[B, H, W]`` bool at the model's input size: True where a pixel shows the image, False on the
        padding that ``resize="pad"`` adds around it (pixel metrics leave the padding out)."""
        index = np.atleast_1d(np.asarray(index))
        h, w = self.spec.size
        out = np.ones((len(index), h, w), bool)
        if self.spec.resize != "pad":
            return out
        out[:] = False
        for row, i in enumerate(index):
            width, height = self._image_size(int(i))
            sx, sy, dx, dy = self._preprocess.geometry(width, height)  # where the image lands, as boxes do
            out[row, int(dy):int(dy) + round(height * sy), int(dx):int(dx) + round(width * sx)] = True
        return out

    def _image_size(self, i: int) -> tuple[int, int]:
        """``(width, height)`` of image ``i`` as stored (from its header only)."""
        import io

        from PIL import Image

        return Image.open(io.BytesIO(self.images[i].as_py())).size

    def get_boxes(self, index, classes: list[str] | None = None) -> list[dict]:
        """The boxes of the images at ``index`` in model-input pixels (scaled, cropped or padded as
        their images are): per image ``{"boxes": float32 [n, 4] xyxy, "labels": int64 [n]}``, ids in
        ``classes`` (default: the dataset's class list). A box a crop cuts away entirely is dropped."""
        import torch

        if self.boxes is None:
            raise ValueError("this image dataset has no boxes: ingest the images with their annotations")
        lookup = {c: i for i, c in enumerate(classes or self.classes)}
        h, w = self.spec.size
        out = []
        for i in np.atleast_1d(np.asarray(index)):
            i = int(i)
            entries = self.boxes[i] or []
            unknown = sorted({b["label"] for b in entries} - set(lookup))
            if unknown:
                raise ValueError(f"image {self.names[i] if self.names else i}: box label(s) {unknown} outside the "
                                 f"class list {list(lookup)}")
            xyxy = np.array([[b["xmin"], b["ymin"], b["xmax"], b["ymax"]] for b in entries], np.float32).reshape(-1, 4)
            if len(xyxy):
                width, height = self._image_size(i)
                sx, sy, dx, dy = self._preprocess.geometry(width, height)
                xyxy = xyxy * np.array([sx, sy, sx, sy], np.float32) + np.array([dx, dy, dx, dy], np.float32)
                xyxy = np.clip(xyxy, 0, np.array([w, h, w, h], np.float32))
            keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
            labels = np.array([lookup[b["label"]] for b in entries], np.int64)
            out.append({"boxes": torch.from_numpy(xyxy[keep]), "labels": torch.from_numpy(labels[keep])})
        return out

    def box_batches(self, batch_size: int, *, classes: list[str] | None = None, shuffle: bool = False, seed: int = 0,
                    drop_last: bool = False):
        """One pass as :class:`Batch` es whose target is the list of each image's boxes (:meth:`get_boxes`)."""
        return self.batches(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                            target=lambda idx: self.get_boxes(idx, classes))


def load_images(catalog: Catalog, dataset: str, spec: ImageInput, *, split: str | None = None,
                domains: list[str] | None = None, classes: list[str] | None = None,
                domain: str = "plant") -> ImageSamples:
    """Reads an ``images`` dataset (optionally one split and some domains) as :class:`ImageSamples`.

    Class ids follow ``classes`` if given (an image of another class is an error naming it), else
    the dataset's class list from its manifest, else the sorted labels.
    """
    has_masks = "mask" in catalog.schema(dataset).names
    table = catalog.read(dataset, split=split, columns=COLUMNS + (["mask"] if has_masks else []))
    if domains:
        table = table.filter(pc.is_in(table.column(domain), pa.array([str(d) for d in domains])))
    if table.num_rows == 0:
        raise ValueError(f"no images in {dataset!r} for split {split!r} and domains {domains}")
    labels = table.column("label").to_pylist()
    classes = list(classes or catalog.manifest(dataset).extra.get("classes") or sorted(set(labels)))
    domain_names, domain_codes = domain_ids(table.column(domain))
    units, times = event_keys(table)
    return ImageSamples(images=table.column("image").combine_chunks(), labels=class_ids(labels, classes, dataset),
                        domains=domain_codes, assets=np.arange(table.num_rows, dtype=np.int64),
                        spec=spec, classes=classes, domain_names=domain_names,
                        names=table.column("source").to_pylist(), boxes=table.column("boxes").to_pylist(),
                        masks=table.column("mask").to_pylist() if has_masks else None, units=units, times=times)


def class_ids(labels: list, classes: list[str], dataset: str) -> np.ndarray:
    """int64 ids of ``labels`` in ``classes``; a label outside the list is an error naming it."""
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"{dataset!r} has images of class(es) {unknown} outside the class list {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in labels], np.int64)


def domain_ids(column) -> tuple[list[str], np.ndarray]:
    """The sorted domain names of a domain column and each row's id among them (int64)."""
    names, codes = np.unique(np.asarray(column.to_pylist(), dtype=object).astype(str), return_inverse=True)
    return names.tolist(), codes.astype(np.int64)
