"""The CUDA path (marker ``gpu``; not part of ``make test``): bf16 training on the vendored sample."""

from __future__ import annotations

import pytest
import torch

from transferline.connectors import create_reader
from transferline.train import load_config, train_loop

from .conftest import REPO

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("adaptation", ["source_only", "mmd", "coral", "dann"])
def test_bf16_transfer_on_cuda(tmp_path, adaptation):
    from transferline.catalog import Catalog
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path)
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         [f"catalog={tmp_path}", "device=cuda", "precision=bf16", "epochs=1",
                          "optim.max_steps_per_epoch=5", "progress=false", f"adaptation={adaptation}"])
    metrics = train_loop(config)
    assert 0 < metrics["test_rmse"] < 200
