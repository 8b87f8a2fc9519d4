"""Shared fixtures: real data locations, a fresh catalog, and the CLI run in-process."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# runs tracked in MLflow go to one folder per test session, not to ./mlruns of the checkout (tests of
# the default location set their own working directory); subprocesses and Ray workers inherit it. The
# folder goes when the session ends (it grows to hundreds of MB over a full run)
os.environ["MLFLOW_TRACKING_URI"] = tempfile.mkdtemp(prefix="transferline-mlruns-")
atexit.register(shutil.rmtree, os.environ["MLFLOW_TRACKING_URI"], ignore_errors=True)
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # for the tests' own MLflow clients reading it
SHARED_DATA = Path(os.environ.get("TRANSFERLINE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="module")
def no_ray_left_running(request):
    """Every test module stops the Ray instance it starts in the test process. A module that leaves
    one running hands it to the modules after it, which then find it instead of starting their own
    (Serve's fixtures have found one with other worker settings and no HTTP proxy): fail the module
    that leaked it, by name, and stop it."""
    yield
    ray = sys.modules.get("ray")  # not imported by this check: most modules never touch Ray
    if ray is not None and ray.is_initialized():
        ray.shutdown()
        pytest.fail(f"{request.module.__name__} left a Ray instance running in the test process: start Ray "
                    "only through a fixture that shuts it down (e.g. ray_cluster), or plan without it")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full real datasets; tests that need them skip, saying why, where the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set TRANSFERLINE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def neu_catalog(tmp_path_factory):
    """A catalog holding the 120 vendored NEU images as dataset ``neu`` (read-only for tests)."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("neu-cat"))
    catalog.ingest("neu", create_reader("neu-det")(sample_path("neu")))
    return catalog


def cmapss_sample_catalog(root: Path):
    """A fresh catalog at ``root`` holding the vendored C-MAPSS sample as ``cmapss-sample``."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(root)
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    return catalog


def sensor_catalog_at(root: Path):
    """A fresh catalog under ``root`` holding the vendored three-sensor CWRU slice as ``cwru_de``,
    ``cwru_fe`` and ``cwru_ba`` (one dataset per accelerometer)."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import cwru_folder

    catalog = Catalog(root / "catalog")
    folder = cwru_folder(root / "cwru")
    for sensor in ("DE", "FE", "BA"):
        catalog.ingest(f"cwru_{sensor.lower()}", create_reader("cwru")(folder, sensor=sensor), progress=False)
    return catalog


# the vendored three-sensor recordings hold 6,144 samples: windows of 512 every 128, 60% to train
SENSOR_SMALL = ["data.spec_options.length=512", "data.spec_options.stride=128", "data.time_split=0.6",
                "data.val_fraction=0.4", "progress=false", "optim.batch_size=16", "tracking.mlflow=false"]


@pytest.fixture(scope="session")
def sample_cmapss() -> Path:
    from transferline.sample_data import sample_path

    return sample_path("cmapss")


@pytest.fixture()
def catalog(tmp_path):
    from transferline.catalog import Catalog

    return Catalog(tmp_path / "catalog")


@pytest.fixture()
def cli(capsys):
    """Runs ``transferline ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from transferline.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def assert_nothing_written(catalog, name: str) -> None:
    """No dataset directory, and nothing left in the staging area."""
    assert not catalog.exists(name)
    assert not (catalog.root / name).exists()
    staging = catalog.root / ".tmp"
    assert not staging.exists() or list(staging.iterdir()) == []


def write_fan_end(root: Path, name: str = "{fault}_{load}_{part}.npy", parts: int = 2, two_channels: bool = False):
    """Real fan-end vibration (the vendored CWRU slice: 3 faults x loads 0 and 3 HP) written as a
    newcomer's lab would: each recording cut into ``parts`` .npy files named by ``name`` (fault
    without ``@6``, load as ``0hp``); ``two_channels`` adds the rectified signal as a second channel."""
    import numpy as np

    from transferline.sample_data import sample_path

    root.mkdir(parents=True, exist_ok=True)
    with np.load(sample_path("cwru_fe") / "cwru_fe.npz") as npz:
        for key in npz.files:
            fault, load = key.split("_")
            for part, piece in enumerate(np.split(npz[key], parts)):
                signal = np.stack([piece, np.abs(piece)]) if two_channels else piece
                np.save(root / name.format(fault=fault.replace("@6", ""), load=load, part=part), signal)
    return root


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    """A short MiniLM text-classification run on the vendored maintenance log: ``(run_dir, config)``."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import maintenance_log
    from transferline.train import load_config, train_loop

    root = tmp_path_factory.mktemp("text-run")
    catalog = Catalog(root / "catalog")
    catalog.ingest("log", create_reader("text")(maintenance_log(root / "log.csv"), text_col="note", label_col="fault"))
    config = load_config(REPO / "examples" / "configs" / "text_classification.yaml",
                         [f"catalog={catalog.root}", "progress=false", "epochs=2", "data.spec_options.max_length=32",
                          "target.per_class=10", "strategy.options.freeze_epochs=1", f"run_dir={root / 'run'}"])
    train_loop(config)
    return root / "run", config


def answer_with(model, inputs: dict, names, subset):
    """What a model of several inputs answers for ``inputs`` (training's preprocessed arrays, by
    input name) with only the inputs in ``subset`` present: the others zeros of their own dtype and
    marked absent, as serving feeds a request that leaves them out."""
    import numpy as np
    import torch

    present = np.repeat(np.array([[name in subset for name in names]]), len(inputs[names[0]]), axis=0)
    feeds = {name: torch.from_numpy(np.where(present[:, i].reshape(-1, *[1] * (inputs[name].ndim - 1)), inputs[name],
                                             np.zeros((), inputs[name].dtype)))
             for i, name in enumerate(names)}
    with torch.no_grad():
        return model({**feeds, "present": torch.from_numpy(present)}).numpy()
