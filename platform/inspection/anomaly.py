"""Anomaly detection from defect-free images only: each method is one ``nn.Module`` that maps images
``[B, C, H, W]`` (preprocessed by the input spec) to an image score ``[B]`` and a pixel anomaly
map ``[B, H, W]``, so that what is exported and served is the fitted model itself.

* **PatchCore** (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022):
  locally aware patch features (two stages of a pretrained backbone, each averaged over its 3x3
  neighbourhood, the coarser one upsampled onto the finer grid) of every defect-free training
  image; a memory bank of a greedy k-center coreset of them; a patch's score is the distance to
  its nearest bank entry, an image's the largest patch score.
* **PaDiM** (Defard et al., "PaDiM: a Patch Distribution Modeling Framework", ICPR 2021): a
  Gaussian per patch position over the training images (a random subset of the feature
  dimensions, covariance shrunk towards the identity); a patch's score is its Mahalanobis distance.

Both upsample the patch scores to the input size and smooth them with a Gaussian (sigma 4 px) for
the pixel map. The decision threshold is a quantile of the image scores of defect-free validation
images (no defect label is used anywhere in fitting).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("patchcore", "padim")


@dataclass
class AnomalyConfig:
    """How an anomaly model is fitted.

    Args:
        method: ``patchcore`` or ``padim``.
        encoder: a timm image encoder name.
        pretrained: ImageNet (``imagenet``), a weights file or folder, or a pretraining run folder.
        stages: the backbone stages whose maps make the patch features (finest first).
        coreset: PatchCore: share of the training patches kept in the memory bank.
        projection: PatchCore: dimensions of the random projection the coreset selection measures in.
        dims: PaDiM: feature dimensions kept (a random subset; all if fewer).
        quantile: the threshold is this quantile of the defect-free validation images' scores.
        val_fraction: share of the defect-free training images held out to set the threshold.
        sigma: Gaussian smoothing of the pixel map, in input pixels.
        seed: draws the coreset's start, PaDiM's dimensions and the validation images.
    """

    method: str = "patchcore"
    encoder: str = "timm/tf_efficientnet_lite0"
    pretrained: str | None = "imagenet"
    stages: tuple[int, ...] = (2, 3)
    coreset: float = 0.05
    projection: int = 64
    dims: int = 100
    quantile: float = 0.99
    val_fraction: float = 0.1
    sigma: float = 4.0
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"anomaly method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 0 < self.coreset <= 1:
            raise ValueError(f"coreset: a share of the training patches in (0, 1], not {self.coreset}")
        if not 0 < self.quantile <= 1 or not 0 < self.val_fraction < 1:
            raise ValueError(f"quantile in (0, 1] and val_fraction in (0, 1), not {self.quantile}, {self.val_fraction}")
        self.stages = tuple(int(s) for s in self.stages)


class PatchFeatures(nn.Module):
    """Locally aware patch features ``[B, D, h, w]`` on the grid of the finest of ``stages``."""

    def __init__(self, encoder: nn.Module, stages: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder, self.stages = encoder, list(stages)
        channels = encoder.pyramid_channels
        if max(self.stages) >= len(channels) or min(self.stages) < 0:
            raise ValueError(f"stages {self.stages}: the encoder has stages 0 to {len(channels) - 1}")
        self.dim = sum(channels[s] for s in self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder.pyramid(x, indices=self.stages)
        size = maps[0].shape[-2:]
        pooled = [F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False) for m in maps]
        return torch.cat([pooled[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                        for m in pooled[1:]], dim=1)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalized 1-D Gaussian of radius 4 sigma."""
    radius = max(1, int(4 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class AnomalyModel(nn.Module):
    """Shared by both methods: patch scores ``[B, h, w]`` → (image score, smoothed pixel map)."""

    def __init__(self, features: PatchFeatures, size: tuple[int, int], sigma: float) -> None:
        super().__init__()
        self.features, self.size = features, tuple(size)
        self.register_buffer("kernel", gaussian_kernel(sigma))
        self.register_buffer("threshold", torch.tensor(float("inf")))

    def patch_scores(self, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_features(self.features(x))

    def from_features(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch features ``[B, D, h, w]`` → image scores ``[B]`` and pixel maps ``[B, H, W]``."""
        scores = self.patch_scores(f)  # [B, h, w]
        image = scores.flatten(1).amax(1)
        up = F.interpolate(scores[:, None], size=self.size, mode="bilinear", align_corners=False)
        k, r = self.kernel, len(self.kernel) // 2  # separable Gaussian, edges reflected
        up = F.conv2d(F.pad(up, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        up = F.conv2d(F.pad(up, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        return image, up[:, 0]


class PatchCore(AnomalyModel):
    """Nearest-neighbour distance of each patch to a memory bank ``[M, D]``."""

    def __init__(self, features: PatchFeatures, bank: torch.Tensor, size, sigma: float, chunk: int = 4096) -> None:
        super().__init__(features, size, sigma)
        self.register_buffer("bank", bank)
        self.register_buffer("bank_sq", (bank ** 2).sum(1))
        self.chunk = chunk

    def patch_scores(self, f: torch.Tensor) -> torch.Tensor:
        b, d, h, w = f.shape
        q = f.permute(0, 2, 3, 1).reshape(-1, d)
        q_sq = (q ** 2).sum(1, keepdim=True)
        best = None
        for lo in range(0, self.bank.shape[0], self.chunk):  # bounded memory: the bank in slices
            bank = self.bank[lo:lo + self.chunk]
            d2 = (q_sq - 2 * q @ bank.T + self.bank_sq[lo:lo + self.chunk]).amin(1)
            best = d2 if best is None else torch.minimum(best, d2)
        return best.clamp_min(0).sqrt().view(b, h, w)


class Padim(AnomalyModel):
    """Mahalanobis distance of each patch to its position's Gaussian (``mean [P, d]``, ``precision [P, d, d]``)."""

    def __init__(self, features: PatchFeatures, dims: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor,
                 size, sigma: float) -> None:
        super().__init__(features, size, sigma)
        self.register_buffer("dims", dims)
        self.register_buffer("mean", mean)
        self.register_buffer("precision", precision)

    def patch_scores(self, f: torch.Tensor) -> torch.Tensor:
        b, _, h, w = f.shape
        x = f.index_select(1, self.dims).flatten(2).permute(0, 2, 1) - self.mean  # [B, P, d]
        m = torch.einsum("bpi,pij,bpj->bp", x, self.precision, x)
        return m.clamp_min(0).sqrt().view(b, h, w)


@dataclass
class FitInfo:
    """What fitting cost and kept."""

    train_images: int
    val_images: int
    patches: int
    bank_entries: int
    bank_bytes: int
    fit_seconds: float
    threshold: float
    map_low: float = 0.0  # the median pixel of the validation images' maps: a typical defect-free pixel
    val_scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bank_bytes_per_train_image"] = self.bank_bytes / max(1, self.train_images)
        return out


@torch.no_grad()
def patch_features(features: PatchFeatures, samples, batch_size: int, progress: bool = False) -> torch.Tensor:
    """Patch features ``[N, D, h, w]`` of every image of ``samples``."""
    from tqdm.auto import tqdm

    features.eval()
    device = next(features.parameters()).device
    out = [features(b.inputs["image"].to(device)) for b in tqdm(samples.batches(batch_size), disable=not progress,
                                                     total=-(-len(samples) // batch_size), desc="features",
                                                     unit="batch", leave=False)]
    return torch.cat(out)


def greedy_coreset(points: torch.Tensor, n: int, projection: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` of ``points [N, D]`` chosen greedily, each the farthest from those chosen so far
    (k-center), measured after a Gaussian random projection to ``projection`` dimensions."""
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same draw on any device
    if projection and projection < points.shape[1]:
        points = points @ (torch.randn(points.shape[1], projection, generator=g) / projection ** 0.5).to(points.device)
    sq = (points ** 2).sum(1)
    chosen = torch.empty(n, dtype=torch.long)
    chosen[0] = int(torch.randint(len(points), (1,), generator=g))
    nearest = torch.full((len(points),), float("inf"), device=points.device)
    for i in range(1, n):
        c = points[chosen[i - 1]]
        nearest = torch.minimum(nearest, sq - 2 * points @ c + sq[chosen[i - 1]])
        chosen[i] = int(nearest.argmax())
    return chosen


def pretrained_encoder(name: str, spec, pretrained: str | None) -> nn.Module:
    """Image encoder ``name`` for ``spec`` with ``pretrained`` weights: ``imagenet``, a weights file
    or folder, a pretraining run folder (its ``encoder.safetensors``), or None (random init)."""
    from ..encoders import create_encoder

    if pretrained and pretrained != "imagenet":
        from pathlib import Path

        run = Path(pretrained)
        if (run / "encoder.safetensors").is_file():  # a pretraining run: its encoder's weights
            from ..train.checkpoint import load_state

            encoder = create_encoder(name, spec)
            encoder.load_state_dict(load_state(run, "encoder")[0])
            return encoder
    return create_encoder(name, spec, pretrained=pretrained)


def build_features(config: AnomalyConfig, spec) -> PatchFeatures:
    return PatchFeatures(pretrained_encoder(config.encoder, spec, config.pretrained), config.stages).eval()


def fit_anomaly(good, config: AnomalyConfig, progress: bool = False,
                device: str | torch.device = "cpu") -> tuple[AnomalyModel, FitInfo]:
    """Fits ``config.method`` on defect-free ``good`` images (:class:`ImageSamples`); a share
    ``val_fraction`` of them is held out to set the threshold. The model is on ``device``."""
    if len(good) < 4:
        raise ValueError(f"anomaly fitting needs at least 4 defect-free images, got {len(good)}")
    t0 = time.perf_counter()
    features = build_features(config, good.spec).to(device)
    f = patch_features(features, good, config.batch_size, progress)
    model, info = fit_on_features(features, f, config, good.spec.size)
    info.fit_seconds = time.perf_counter() - t0
    return model, info


def fit_on_features(features: PatchFeatures, f: torch.Tensor, config: AnomalyConfig,
                    size: tuple[int, int]) -> tuple[AnomalyModel, FitInfo]:
    """Fits on the patch features ``f [N, D, h, w]`` of N defect-free images (what :func:`patch_features`
    gives): ``val_fraction`` of the images, drawn with ``config.seed`` as the in-memory split draws
    units, set the threshold; the others make the bank or the Gaussians."""
    from ..data.specs import deal_assets

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    parts = deal_assets(np.arange(len(f)), {"fit": 1 - config.val_fraction, "val": config.val_fraction}, config.seed)
    take = lambda idx: f[torch.as_tensor(np.sort(idx), device=f.device)]  # noqa: E731
    fit_f, val_f = take(parts["fit"]), take(parts["val"])
    n, d, h, w = fit_f.shape
    if config.method == "patchcore":
        flat = fit_f.permute(0, 2, 3, 1).reshape(-1, d)
        keep = max(1, round(config.coreset * len(flat)))
        index = greedy_coreset(flat, keep, config.projection, config.seed) if keep < len(flat) else torch.arange(len(flat))
        model: AnomalyModel = PatchCore(features, flat[index.to(flat.device)].contiguous(), size, config.sigma)
        entries, nbytes = keep, flat[index].numel() * 4
    else:
        g = torch.Generator().manual_seed(config.seed)
        dims = torch.randperm(d, generator=g)[:min(config.dims, d)].sort().values.to(f.device)
        x = fit_f.index_select(1, dims).flatten(2).permute(2, 0, 1)  # [P, N, k]
        mean = x.mean(1)
        centred = x - mean[:, None]
        cov = centred.transpose(1, 2) @ centred / max(1, n - 1) + 0.01 * torch.eye(len(dims), device=f.device)
        # through Cholesky: the covariance is symmetric positive definite, and the batched LU inverse
        # of oneMKL fails on some real feature covariances of 150+ dimensions ("Pivots given to lu_solve")
        precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        model = Padim(features, dims, mean, precision, size, config.sigma)
        entries, nbytes = h * w, (mean.numel() + cov.numel()) * 4
    model.to(f.device).eval()  # the kernel and threshold buffers join the bank on its device
    val_scores, val_maps = score_features(model, val_f, maps=True)
    model.threshold.fill_(float(np.quantile(val_scores, config.quantile)))
    info = FitInfo(train_images=n, val_images=len(val_f), patches=n * h * w, bank_entries=int(entries),
                   bank_bytes=int(nbytes), fit_seconds=time.perf_counter() - t0,
                   threshold=float(model.threshold), map_low=float(np.median(val_maps)),
                   val_scores=val_scores.tolist())
    return model, info


@torch.no_grad()
def score_features(model: AnomalyModel, f: torch.Tensor, batch_size: int = 32, maps: bool = False):
    """Image scores ``[N]`` and, with ``maps``, pixel maps ``[N, H, W]`` of precomputed patch features."""
    model.eval()
    scores, out = [], []
    for lo in range(0, len(f), batch_size):
        s, m = model.from_features(f[lo:lo + batch_size])
        scores.append(s.cpu().numpy())
        if maps:
            out.append(m.cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0, np.float32), (np.concatenate(out) if maps else None)


@torch.no_grad()
def score_images(model: AnomalyModel, samples, batch_size: int = 32, maps: bool = False):
    """Image scores ``[N]`` and, with ``maps``, pixel maps ``[N, H, W]`` (float32 numpy)."""
    model.eval()
    device = model.threshold.device
    scores, out = [], []
    for b in samples.batches(batch_size):
        s, m = model(b.inputs["image"].to(device))
        scores.append(s.cpu().numpy())
        if maps:
            out.append(m.cpu().numpy())
    return np.concatenate(scores), (np.concatenate(out) if maps else None)


def evaluate_anomaly(model: AnomalyModel, samples, defect: np.ndarray, batch_size: int = 32,
                     pixel: bool = True) -> dict:
    """Image AUROC (``defect`` marks defective images), pixel AUROC over every pixel of every image
    against the masks at the input size (padding left out), and the decisions at the stored threshold."""
    scores, maps = score_images(model, samples, batch_size, maps=pixel)
    index = np.arange(len(samples))
    masks = samples.get_masks(index) if pixel else None
    valid = samples.get_valid(index) if pixel else None
    return anomaly_metrics(scores, defect, float(model.threshold), maps, masks, valid)


def anomaly_metrics(scores: np.ndarray, defect: np.ndarray, threshold: float, maps: np.ndarray | None = None,
                    masks: np.ndarray | None = None, valid: np.ndarray | None = None) -> dict:
    """Image AUROC, the flag rates at ``threshold`` and, given maps and masks, pixel AUROC (scikit-learn)
    over the pixels ``valid`` marks (all if None: padding, always defect-free and scored low, would
    otherwise count as easy negatives)."""
    from sklearn.metrics import roc_auc_score

    defect = np.asarray(defect, bool)
    flagged = scores > threshold
    out = {"image_auroc": float(roc_auc_score(defect, scores)),
           "true_positive_rate": float(flagged[defect].mean()) if defect.any() else None,
           "false_positive_rate": float(flagged[~defect].mean()) if (~defect).any() else None,
           "images": int(len(scores)), "defective": int(defect.sum())}
    if maps is not None and masks is not None:
        valid = None if valid is None or np.all(valid) else np.asarray(valid, bool).ravel()
        labels, values = masks.ravel(), maps.ravel()
        out["pixel_auroc"] = float(roc_auc_score(labels, values) if valid is None else
                                   roc_auc_score(labels[valid], values[valid]))
    return out
