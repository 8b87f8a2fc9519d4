"""Defect detection with boxes: torchvision's FCOS head on a feature pyramid of any timm encoder.

* **Model**: the encoder's stage maps at strides 8, 16 and 32 (``stages``) → torchvision's
  ``FeaturePyramidNetwork`` with two extra levels (P6, P7) → torchvision's ``FCOS`` (Tian et al.,
  "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019).
* **Why FCOS on 2 CPU cores**: one stage and one prediction per feature-map cell. Faster R-CNN
  adds a region-proposal stage and a per-region head (hundreds of RoIs per image in training);
  RetinaNet predicts 9 anchors per cell, so its classification and box convolutions are 9 times
  wider. FCOS needs no anchor shapes tuned to the data either: NEU boxes range from thin scratches
  to whole-image crazing.
* **Training**: the one epoch loop (:func:`transferline.train.loop.run_epochs`) with a fine-tuning
  strategy from :mod:`transferline.train.strategies` (default: head and pyramid only for
  ``freeze_epochs``, then the encoder at ``encoder_lr_mult`` of the rate), horizontal flips of
  images with their boxes (torchvision ``transforms.v2``), early stopping on validation mAP@0.5.
  (Vertical flips as well stalled training on planted defects: the loss stopped falling; not used.) The encoder's BatchNorm statistics stay as pretrained: batches of a few images on a CPU
  estimate them worse than ImageNet did (as torchvision's detectors freeze them).
* **Metrics**: mAP@0.5 and mAP@0.5:0.95 (COCO's 101-point interpolation) from torchmetrics'
  ``MeanAveragePrecision`` with the faster-coco-eval backend.

Boxes are in model-input pixels inside the model; :func:`detect` maps them back to each original
image's pixels.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class DetectorConfig:
    """How a detector is built and trained.

    Args:
        encoder: a timm image encoder name (``timm/<model>``).
        pretrained: ``imagenet`` (offline weights where shipped), a weights file or folder, a
            pretraining run folder, or None (random init).
        stages: encoder stages feeding the pyramid (finest first; strides 8, 16, 32 for
            EfficientNet and ResNet-like models).
        channels: width of the pyramid and of the FCOS head.
        size: model input ``(height, width)``.
        epochs, batch_size, lr, weight_decay: training (AdamW, cosine decay per step).
        strategy: fine-tuning strategy; ``freeze_epochs`` / ``encoder_lr_mult`` its options.
        flips: random horizontal flips in training.
        patience: epochs without a better validation mAP@0.5 before stopping.
        score_thresh, nms_thresh, detections: what :meth:`Detector.forward` keeps at inference.
        time_limit: seconds after which no new epoch starts (None: no limit).
        seed: weight init of the head, batch order and flips.
    """

    encoder: str = "timm/tf_efficientnet_lite0"
    pretrained: str | None = "imagenet"
    stages: tuple[int, ...] = (2, 3, 4)
    channels: int = 64
    size: tuple[int, int] = (224, 224)
    epochs: int = 12
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    strategy: str = "freeze_unfreeze"
    freeze_epochs: int = 1
    encoder_lr_mult: float = 0.1
    flips: bool = True
    patience: int = 4
    score_thresh: float = 0.05
    nms_thresh: float = 0.6
    detections: int = 100
    time_limit: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.stages, self.size = tuple(int(s) for s in self.stages), tuple(int(s) for s in self.size)
        if len(self.size) != 2 or min(self.size) < 32 or any(v % 32 for v in self.size):
            raise ValueError(f"size: (height, width), each a multiple of 32 (the pyramid's coarsest stride), "
                             f"not {self.size}")
        if not self.stages or list(self.stages) != sorted(set(self.stages)):
            raise ValueError(f"stages: increasing encoder stage indices, not {self.stages}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs and batch_size >= 1 and lr > 0, not {self.epochs}, {self.batch_size}, {self.lr}")
        if not 0 <= self.score_thresh < 1 or not 0 < self.nms_thresh <= 1:
            raise ValueError(f"score_thresh in [0, 1) and nms_thresh in (0, 1], not {self.score_thresh}, "
                             f"{self.nms_thresh}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class PyramidBackbone(nn.Module):
    """Encoder stages → FPN maps ``{"0": P3, ..., "p7": P7}`` with ``out_channels`` (what FCOS takes)."""

    def __init__(self, encoder: nn.Module, stages: tuple[int, ...], channels: int) -> None:
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

        super().__init__()
        available = len(encoder.pyramid_channels)
        if max(stages) >= available:
            raise ValueError(f"stages {list(stages)}: {encoder.name} has {available} stages (0 to {available - 1})")
        self.encoder, self.stages, self.out_channels = encoder, list(stages), channels
        self.fpn = FeaturePyramidNetwork([encoder.pyramid_channels[s] for s in stages], channels,
                                         extra_blocks=LastLevelP6P7(channels, channels))

    def forward(self, x: torch.Tensor) -> OrderedDict:
        maps = self.encoder.pyramid(x, self.stages)
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


class BoxDecoder:
    """Dense FCOS outputs ``[B, N, K + 5]`` (per location of every pyramid level, finest first: class
    logits with the background first, box regression, centerness) → per image ``{"boxes", "scores",
    "labels"}`` by torchvision's own FCOS post-processing (score threshold, top-k per level, box
    decoding, class-wise NMS). The eager detector and the served export both decode with it."""

    def __init__(self, size: tuple[int, int], strides: list[int], levels: list[tuple[int, int]], n_classes: int,
                 score_thresh: float, nms_thresh: float, detections: int, topk: int = 1000) -> None:
        from torchvision.models.detection import _utils as det_utils
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.image_list import ImageList

        self.size, self.levels, self.n_classes = tuple(size), [tuple(v) for v in levels], n_classes
        generator = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
        grids = [torch.zeros(1, 1, h, w) for h, w in self.levels]
        self.anchors = generator(ImageList(torch.zeros(1, 1, *self.size), [self.size]), grids)[0]
        # what torchvision's FCOS.postprocess_detections reads from its model
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections
        self.topk_candidates = topk
        self.box_coder = det_utils.BoxLinearCoder(normalize_by_size=True)

    @property
    def locations(self) -> int:
        return sum(h * w for h, w in self.levels)

    def __call__(self, dense: torch.Tensor) -> list[dict]:
        from torchvision.models.detection import FCOS

        if dense.shape[1] != self.locations or dense.shape[2] != self.n_classes + 5:
            raise ValueError(f"dense outputs {list(dense.shape)}; expected [B, {self.locations}, {self.n_classes + 5}]")
        counts = [h * w for h, w in self.levels]
        k = self.n_classes
        heads = {name: list(part.split(counts, dim=1)) for name, part in
                 (("cls_logits", dense[..., :k]), ("bbox_regression", dense[..., k:k + 4]),
                  ("bbox_ctrness", dense[..., k + 4:]))}
        anchors = [list(self.anchors.to(dense.device).split(counts))] * len(dense)
        found = FCOS.postprocess_detections(self, heads, anchors, [self.size] * len(dense))
        out = []
        for d in found:
            real = d["labels"] > 0  # torchvision's class 0 is the background
            out.append({"boxes": d["boxes"][real], "scores": d["scores"][real], "labels": d["labels"][real] - 1})
        return out

    def to_dict(self) -> dict:
        return {"size": list(self.size), "levels": [list(v) for v in self.levels], "n_classes": self.n_classes,
                "score_thresh": self.score_thresh, "nms_thresh": self.nms_thresh,
                "detections": self.detections_per_img, "topk": self.topk_candidates}

    @classmethod
    def from_dict(cls, d: dict, strides: list[int]) -> "BoxDecoder":
        return cls(d["size"], strides, d["levels"], d["n_classes"], d["score_thresh"], d["nms_thresh"],
                   d["detections"], d["topk"])


class Detector(nn.Module):
    """Images ``[B, C, H, W]`` (preprocessed by the input spec) → per image ``{"boxes" [n, 4] xyxy
    in input pixels, "scores" [n], "labels" [n]}`` (ids into ``classes``); in training, with
    ``targets`` (the same keys, labels 0-based), the FCOS losses."""

    def __init__(self, encoder: nn.Module, classes: list[str], config: DetectorConfig) -> None:
        from torchvision.models.detection import FCOS
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        super().__init__()
        if not classes:
            raise ValueError("a detector needs the class names of its boxes")
        self.classes = list(classes)
        backbone = PyramidBackbone(encoder, config.stages, config.channels)
        strides = [encoder.pyramid_reductions[s] for s in config.stages]
        self.strides = strides = strides + [strides[-1] * 2, strides[-1] * 4]  # P6, P7
        channels = encoder.in_channels
        # NOTE: images arrive preprocessed at the model size: FCOS's own transform neither
        # rescales (min and max size are the input's) nor normalizes (mean 0, std 1) them again.
        self.fcos = FCOS(backbone, num_classes=len(classes) + 1,  # torchvision's class 0 is the background
                         min_size=min(config.size), max_size=max(config.size),
                         image_mean=[0.0] * channels, image_std=[1.0] * channels,
                         anchor_generator=AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides)),
                         score_thresh=config.score_thresh, nms_thresh=config.nms_thresh,
                         detections_per_img=config.detections)
        h, w = config.size
        self.decoder = BoxDecoder(config.size, strides, [(-(-h // s), -(-w // s)) for s in strides], len(classes) + 1,
                                  config.score_thresh, config.nms_thresh, config.detections)

    @property
    def encoder(self) -> nn.Module:
        return self.fcos.backbone.encoder

    def retarget(self, classes: list[str]) -> None:
        """Makes the detector answer ``classes``: a class it knows keeps its output, another gets a
        fresh one (initialized as torchvision does); encoder, pyramid, box regression and
        centerness keep their weights (a detector of one line carried to another's defects)."""
        head = self.fcos.head.classification_head
        old, n = head.cls_logits, len(classes) + 1
        new = nn.Conv2d(old.in_channels, n, kernel_size=3, stride=1, padding=1).to(old.weight.device)
        torch.nn.init.normal_(new.weight, std=0.01)
        torch.nn.init.constant_(new.bias, float(old.bias.detach()[1:].mean()) if len(self.classes) else 0.0)
        with torch.no_grad():
            for i, name in enumerate(classes):
                if name in self.classes:  # output slot 0 is the background
                    j = self.classes.index(name) + 1
                    new.weight[i + 1], new.bias[i + 1] = old.weight[j], old.bias[j]
        head.cls_logits, head.num_classes = new, n
        d = self.decoder
        self.decoder = BoxDecoder(d.size, self.strides, d.levels, n, d.score_thresh, d.nms_thresh,
                                  d.detections_per_img, d.topk_candidates)
        self.classes = list(classes)

    def train(self, mode: bool = True) -> "Detector":
        super().train(mode)
        for m in self.encoder.modules():  # pretrained normalization statistics are kept (see the module doc)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def dense(self, images: torch.Tensor) -> torch.Tensor:
        """The network's part of inference (what is exported): ``[B, N, K + 5]`` for :class:`BoxDecoder`."""
        out = self.fcos.head(list(self.fcos.backbone(images).values()))
        return torch.cat([out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"]], dim=-1)

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None):
        if self.training:
            if targets is None:
                raise ValueError("a detector in training mode needs the targets (boxes and labels of each image)")
            return self.fcos(list(images), [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets])
        return self.decoder(self.dense(images))


class DenseDetector(nn.Module):
    """What the registry exports: images → :meth:`Detector.dense` (decoded in the server by :class:`BoxDecoder`)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.detector.dense(images)


def to_original(boxes: np.ndarray, preprocess, width: int, height: int) -> np.ndarray:
    """Boxes ``[n, 4]`` xyxy in model-input pixels → the original ``width`` x ``height`` image's pixels."""
    sx, sy, dx, dy = preprocess.geometry(width, height)
    out = (np.asarray(boxes, np.float64) - np.array([dx, dy, dx, dy])) / np.array([sx, sy, sx, sy])
    return np.clip(out, 0, [width, height, width, height])


def box_classes(samples) -> list[str]:
    """The classes that label boxes in ``samples`` (in the dataset's class order; box labels outside
    its class list after them, sorted): what a detector of them answers."""
    labels = {b["label"] for boxes in samples.boxes or [] for b in boxes or []}
    return [c for c in samples.classes if c in labels] + sorted(labels - set(samples.classes))


def build_detector(config: DetectorConfig, classes: list[str], spec=None) -> Detector:
    """A detector for ``classes`` on ``config.encoder`` with its pretrained weights."""
    from ..data import ImageInput
    from .anomaly import pretrained_encoder

    spec = spec or ImageInput(size=config.size)
    return Detector(pretrained_encoder(config.encoder, spec, config.pretrained), classes, config)


def flip(images: torch.Tensor, targets: list[dict], generator: torch.Generator) -> tuple[torch.Tensor, list[dict]]:
    """Each image (with its boxes) flipped left-right with probability 1/2."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    out_images, out_targets = [], []
    size = tuple(images.shape[-2:])
    for image, target in zip(images, targets):
        boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=size)
        if torch.rand((), generator=generator) < 0.5:
            image, boxes = TF.horizontal_flip(image), TF.horizontal_flip(boxes)
        out_images.append(image)
        out_targets.append({"boxes": boxes.as_subclass(torch.Tensor), "labels": target["labels"]})
    return torch.stack(out_images), out_targets


@torch.no_grad()
def evaluate_detector(model: Detector, samples, batch_size: int = 16, device: str | torch.device = "cpu",
                      per_class: bool = False) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 (and per class, with ``per_class``) of ``model`` on ``samples``
    (:class:`~transferline.data.images.ImageSamples` with boxes), by torchmetrics with faster-coco-eval."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval",
                                  class_metrics=per_class)
    was_training = model.training
    model.eval()
    for batch in samples.box_batches(batch_size, classes=model.classes):
        detections = model(batch.inputs["image"].to(device))
        metric.update([{k: v.cpu() for k, v in d.items()} for d in detections], batch.target)
    result = metric.compute()
    model.train(was_training)
    out = {"map50": float(result["map_50"]), "map50_95": float(result["map"]), "mar100": float(result["mar_100"]),
           "images": len(samples), "boxes": int(sum(len(b or []) for b in samples.boxes))}
    if per_class:
        ids = result["classes"].reshape(-1).tolist()
        values = result["map_per_class"].reshape(-1).tolist()
        out["map50_95_per_class"] = {model.classes[int(c)]: float(v) for c, v in zip(ids, values)}
    return out


def fit_detector(train, val, config: DetectorConfig, *, classes: list[str] | None = None,
                 model: Detector | None = None, dist=None, device: str | torch.device = "cpu",
                 progress: bool = False, report: Callable[[dict], None] | None = None) -> tuple[Detector, dict]:
    """Trains a detector on ``train`` (image samples with boxes), early-stopped on ``val``'s mAP@0.5.

    ``model``: start from this detector (e.g. one trained on another line; retargeted to
    ``classes`` where they differ, see :meth:`Detector.retarget`) instead of a fresh one on
    ``config.encoder``. With ``dist`` (a Ray Train worker's place), each worker draws its own
    batches and gradients are averaged. Returns the best model (on the CPU) and the fit's record:
    the best epoch, its validation mAPs, per-epoch history, seconds.
    """
    from ..train._dist import Dist
    from ..train.loop import cycle, run_epochs
    from ..train.strategies import create_strategy

    dist = dist or Dist()
    torch.manual_seed(config.seed)
    classes = list(classes or box_classes(train))
    model = (model or build_detector(config, classes, train.spec)).to(device)
    if model.classes != classes:
        model.retarget(classes)
    dist.broadcast(model)
    options = {"freeze_epochs": config.freeze_epochs, "encoder_lr_mult": config.encoder_lr_mult} \
        if config.strategy == "freeze_unfreeze" else {}
    strategy = create_strategy(config.strategy, **options)
    encoder = model.encoder
    rest = [p for name, p in model.named_parameters() if not name.startswith("fcos.backbone.encoder.")]
    opt = torch.optim.AdamW(strategy.param_groups(encoder, rest, config.lr), lr=config.lr,
                            weight_decay=config.weight_decay)
    batch_size = min(config.batch_size, len(train))
    steps = max(1, len(train) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps * config.epochs)
    generator = torch.Generator().manual_seed(config.seed * 1000 + 17 + dist.rank)
    epoch = [0]

    def batches():
        epoch[0] += 1
        for batch in train.box_batches(batch_size, classes=classes, shuffle=True, drop_last=True,
                                       seed=config.seed * 1000 + epoch[0] + 1_000_003 * dist.rank):
            yield batch

    stream = cycle(batches)

    def step(progress: float) -> dict:
        batch = next(stream)
        images, targets = batch.inputs["image"], batch.target
        if config.flips:
            images, targets = flip(images, targets, generator)
        losses = model(images.to(device), [{k: v.to(device) for k, v in t.items()} for t in targets])
        return {"loss": sum(losses.values()), **{k: v.detach() for k, v in losses.items()}}

    @dist.same_on_all
    def evaluate() -> dict:
        return {f"val_{k}": v for k, v in evaluate_detector(model, val, device=device).items()
                if k in ("map50", "map50_95")}

    def on_epoch_start(e: int) -> None:
        strategy.on_epoch_start(e, encoder)
        model.train()  # the encoder's normalization statistics stay frozen whatever the strategy set

    t0 = time.perf_counter()
    stopper = run_epochs(module=model, step=step, steps_per_epoch=steps, epochs=config.epochs, optimizer=opt,
                         scheduler=scheduler, evaluate=evaluate, metric="val_map50", higher_is_better=True,
                         patience=config.patience, on_epoch_start=on_epoch_start, report=report,
                         progress=progress, after_backward=lambda: dist.average_gradients(model),
                         time_limit=config.time_limit)
    model.eval()
    history = stopper.history
    best = history[stopper.best_epoch] if stopper.best_epoch >= 0 else {}
    return model.cpu(), {"best_epoch": stopper.best_epoch + 1, "epochs_run": len(history),
                         "val_map50": best.get("val_map50"), "val_map50_95": best.get("val_map50_95"),
                         "train_images": len(train), "val_images": len(val), "steps_per_epoch": steps,
                         "fit_seconds": time.perf_counter() - t0, "history": history}


@torch.no_grad()
def detect(model: Detector, images: list, spec, score_thresh: float = 0.0) -> list[list[dict]]:
    """Boxes for raw images (encoded bytes or uint8 arrays), in each image's own pixels: per image a
    list of ``{"label", "score", "xyxy"}``, highest score first, at least ``score_thresh``."""
    from ..data.preprocess import ImagePreprocess, _to_pil

    preprocess = ImagePreprocess(spec)
    decoded = [_to_pil(image) for image in images]  # decoded once: for the input and for each image's size
    model.eval()
    return [boxes_answer(d, model.classes, preprocess, img.width, img.height, score_thresh)
            for d, img in zip(model(torch.from_numpy(preprocess(decoded))), decoded)]


def boxes_answer(found: dict, classes: list[str], preprocess, width: int, height: int,
                 score_thresh: float = 0.0) -> list[dict]:
    """One image's detections as answered to people: label, score, xyxy in its own pixels."""
    keep = found["scores"].numpy() >= score_thresh
    boxes = to_original(found["boxes"].numpy()[keep], preprocess, width, height)
    return [{"label": classes[int(c)], "score": round(float(s), 6), "xyxy": [round(float(v), 2) for v in b]}
            for b, s, c in zip(boxes, found["scores"].numpy()[keep], found["labels"].numpy()[keep])]
