"""Run features from the first seconds of a run's signals, through a shared series encoder:
cross-task transfer from a tool-wear model into the quality surrogate.

Each run's first ``steps`` rows (every sensor, standardized with the training runs' statistics) are
cut into windows; an encoder from the factory embeds them, the embeddings are averaged per run and
reduced by PCA (fitted on the training runs) to a few inputs beside the set-points. The encoder is
either left at its random initialization (``scratch``) or pretrained with the one training loop on
the tool-wear task (classify ``label``, e.g. ``tool_condition``, from the windows of the training
runs only: ``pretrained``). In a leave-one-run-out evaluation everything is refitted per fold, so
the held-out run's label never reaches its own features.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..catalog import Catalog
from ..data import WindowSpec
from ..data.specs import load_windows
from ..data.windows import Windows
from .table import ProcessData


@dataclass(frozen=True)
class SignalFeatures:
    """How run features are made: the first ``steps`` rows (from the first row whose phase, the
    dataset's ``phase`` role, starts with ``phase``; None: from the run's start), ``window``/``stride`` windows,
    ``encoder`` (any series encoder name), ``pretrain`` ("scratch" or "tool_wear": supervised on
    ``label`` for ``epochs``), ``dims`` principal components."""

    steps: int = 120
    phase: str | None = "Layer 1"
    window: int = 40
    stride: int = 20
    encoder: str = "cnn_small"
    pretrain: str = "tool_wear"
    label: str = "tool_condition"
    epochs: int = 15
    dims: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pretrain not in ("scratch", "tool_wear"):
            raise ValueError(f"signal features: pretrain 'scratch' or 'tool_wear', not {self.pretrain!r}")
        if not 0 < self.window <= self.steps:
            raise ValueError(f"signal features: window {self.window} must lie in 1..steps ({self.steps})")


def run_windows(catalog: Catalog, data: ProcessData, spec: SignalFeatures) -> Windows:
    """Windows over the first ``spec.steps`` rows of each of ``data``'s runs, every sensor of the
    dataset (its ``sensors`` role), labelled with ``spec.label``."""
    sensors = list(catalog.manifest(data.dataset).roles.get("sensors") or [])
    if not sensors:
        raise ValueError(f"dataset {data.dataset!r} records no sensors role: no signals to take features from")
    cut = WindowSpec("process_signals", "runs", length=spec.window, stride=spec.stride, features=tuple(sensors),
                     label=spec.label, normalize="none")
    windows = load_windows(catalog, data.dataset, cut)
    offset = windows.ends - windows.length - windows.asset_starts  # first row of each window within its run
    start = _phase_starts(catalog, data.dataset, windows, spec.phase)
    first = (offset >= start[windows.assets]) & (offset + windows.length <= start[windows.assets] + spec.steps)
    windows = replace(windows.subset(first), channels=sensors)
    missing = sorted(set(data.runs) - {windows.asset_names[a].split("/")[-1] for a in np.unique(windows.assets)})
    if missing:
        raise ValueError(f"runs {missing[:3]} are shorter than one window of {spec.window} steps")
    return windows


def _phase_starts(catalog: Catalog, dataset: str, windows: Windows, phase: str | None) -> np.ndarray:
    """Per asset of ``windows``: the row (within the run) where ``phase`` begins; 0 without a phase."""
    starts = np.zeros(len(windows.asset_names), np.int64)
    column = (catalog.manifest(dataset).roles.get("phase") or [None])[0]
    if phase is None or column is None:
        return starts
    frame = catalog.read(dataset, columns=["plant", "asset", "step", column]).to_pandas().sort_values(
        ["plant", "asset", "step"])
    for (plant, asset), rows in frame.groupby(["plant", "asset"], sort=False):
        hits = np.flatnonzero(rows[column].astype(str).str.startswith(phase).to_numpy())
        if not len(hits):
            raise ValueError(f"run {asset!r} of {dataset!r} never enters phase {phase!r} ({column})")
        name = f"{plant}/{asset}"
        if name in windows.asset_names:
            starts[windows.asset_names.index(name)] = hits[0]
    return starts


def fold_features(windows: Windows, data: ProcessData, train: np.ndarray, spec: SignalFeatures) -> np.ndarray:
    """Features ``[runs, dims]`` for every run of ``data``, fitted on the runs ``train`` alone."""
    names = [windows.asset_names[a].split("/")[-1] for a in range(len(windows.asset_names))]
    run_of_window = np.array([data.runs.index(names[a]) for a in windows.assets])
    in_train = np.isin(run_of_window, train)
    windows = _standardized(windows, in_train)
    encoder = _encoder(windows, in_train, run_of_window, train, spec)
    with torch.no_grad():
        x = torch.from_numpy(windows.get(np.arange(len(windows))))
        emb = encoder(x).numpy()
    per_run = np.stack([emb[run_of_window == r].mean(axis=0) for r in range(len(data.runs))])
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(spec.dims, len(train) - 1), random_state=spec.seed).fit(per_run[train])
    return pca.transform(per_run)


def _standardized(windows: Windows, in_train: np.ndarray) -> Windows:
    """The same windows over values standardized per sensor with the training windows' rows."""
    rows = windows.subset(in_train).covered_rows()
    mean = windows.values[:, rows].mean(axis=1, keepdims=True)
    std = windows.values[:, rows].std(axis=1, keepdims=True)
    values = ((windows.values - mean) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)
    return replace(windows, values=values)


def _encoder(windows: Windows, in_train: np.ndarray, run_of_window: np.ndarray, train: np.ndarray,
             spec: SignalFeatures) -> torch.nn.Module:
    """The encoder: at its seeded initialization, or pretrained on the tool-wear task by the one
    training loop (two training runs held out for early stopping)."""
    from ..encoders import create_encoder
    from ..train import load_config, train_loop
    from ..train.checkpoint import load_state
    from ..train.data import RunData

    torch.manual_seed(spec.seed)
    data_spec = WindowSpec("process_signals", "runs", length=spec.window, stride=spec.stride,
                           features=tuple(windows.channels), label=spec.label, normalize="none",
                           classes=tuple(windows.classes))
    if spec.pretrain == "scratch":
        source = windows.subset(in_train)
        spec_in = RunData(source, source, data_spec=data_spec, class_names=list(windows.classes)).input_spec()
        return create_encoder(spec.encoder, spec_in).eval()
    rng = np.random.default_rng(spec.seed)
    val_runs = rng.choice(train, size=min(2, len(train) - 1), replace=False)
    fit = windows.subset(in_train & ~np.isin(run_of_window, val_runs))
    val = windows.subset(np.isin(run_of_window, val_runs))
    data = RunData(fit, val, normalizers={}, data_spec=data_spec, class_names=list(windows.classes))
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(None, ["mode=pretrain", f"encoder.name={spec.encoder}", "task.name=fault_diagnosis",
                                    f"task.options={{n_classes: {len(windows.classes)}}}", "objective.name=supervised",
                                    f"optim.epochs={spec.epochs}", "optim.batch_size=64", "optim.lr=0.001",
                                    "early_stopping.patience=4", f"seed={spec.seed}", "progress=false",
                                    "data.dataset=process",
                                    f"data.spec={{kind: runs, length: {spec.window}, stride: {spec.stride}, "
                                    f"normalize: none, label: {spec.label}, features: [{', '.join(windows.channels)}]}}"])
        train_loop({**config, "run_dir": tmp + "/run"}, data=data)
        encoder = create_encoder(spec.encoder, data.input_spec())
        state, _ = load_state(tmp + "/run", "encoder")
        encoder.load_state_dict(state)
    return encoder.eval()
