"""Two short real transfer runs on the vendored sample (different seeds, so different weights),
registered in a fresh model registry."""

from __future__ import annotations

import pytest

from ..conftest import REPO, SENSOR_SMALL, cmapss_sample_catalog, sensor_catalog_at


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    from transferline.train import load_config, train_loop

    root = tmp_path_factory.mktemp("serve-runs")
    catalog = cmapss_sample_catalog(root / "catalog")
    out = {}
    for seed in (0, 1):
        config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                             [f"catalog={catalog.root}", "epochs=1", "optim.max_steps_per_epoch=3", "progress=false",
                              f"seed={seed}", "strategy=full"])
        config["run_dir"] = str(root / f"run{seed}")
        train_loop(config)
        out[seed] = root / f"run{seed}"
    return out


@pytest.fixture()
def registry(tmp_path, runs):
    from transferline.model_registry import ModelRegistry

    reg = ModelRegistry(tmp_path / "models")
    reg.register(runs[0], "plant-a", stage="production")
    reg.register(runs[1], "plant-b")
    return reg


def windows(n: int = 4, seed: int = 0):
    """Raw FD001-like windows [n, 30, 14] around the sensors' typical values."""
    import numpy as np

    typical = np.array([642.5, 1590.0, 1409.0, 553.4, 2388.1, 9065.0, 47.5, 521.4, 2388.1, 8143.0, 8.44, 393.0,
                        38.8, 23.3])
    rng = np.random.default_rng(seed)
    return typical * (1 + 0.001 * rng.standard_normal((n, 30, 14)))


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, neu_catalog):
    """A small NEU classifier (64 px, two epochs from ImageNet weights) and its catalog."""
    from transferline.train import load_config, train_loop

    root, catalog = tmp_path_factory.mktemp("image-run"), neu_catalog
    config = load_config(REPO / "examples" / "configs" / "neu_fewshot.yaml",
                         [f"catalog={catalog.root}", "data.spec_options.size=[64,64]", "epochs=2", "progress=false"])
    config["run_dir"] = str(root / "run")
    train_loop(config)
    return root / "run", catalog


@pytest.fixture(scope="session")
def fused_runs(tmp_path_factory):
    """Gated and attention fusion of the vendored three-sensor slice (three epochs at 0 hp):
    ``{fusion: (run_dir, config)}``."""
    from transferline.train import load_config, train_loop

    root = tmp_path_factory.mktemp("fused-serve")
    catalog = sensor_catalog_at(root)
    out = {}
    for fusion in ("gated", "attention"):
        config = load_config(REPO / "examples" / "configs" / "fusion_cwru.yaml",
                             [f"catalog={catalog.root}", *SENSOR_SMALL, "epochs=3", 'target.domains=["0"]',
                              "adaptation=source_only", f"encoder.options.fusion={fusion}", f"run_dir={root / fusion}"])
        train_loop(config)
        out[fusion] = (root / fusion, config)
    return out
