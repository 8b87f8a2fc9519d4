"""Pretraining objectives: one step each, losses finite, gradients reach the encoder; masks."""

from __future__ import annotations

import pytest
import torch

from transferline.data import Batch, InputSpec, SeriesInput
from transferline.encoders import create_encoder
from transferline.objectives import create_objective, list_objectives, random_mask, subsequence_mask
from transferline.tasks import create_task


@pytest.mark.parametrize("name", list_objectives())
@pytest.mark.parametrize("encoder_name", ["cnn_small", "lstm_fcn"])
def test_step(name, encoder_name):
    torch.manual_seed(0)
    spec = InputSpec.of(SeriesInput(channels=4, window=24))
    encoder = create_encoder(encoder_name, spec)
    objective = create_objective(name, encoder, spec, task=create_task("rul"))
    out = objective.step(Batch({"series": torch.randn(16, 4, 24)}, torch.rand(16) * 100), progress=0.5)
    assert torch.isfinite(out["loss"]) and out["loss"].dim() == 0
    out["loss"].backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_supervised_needs_task():
    with pytest.raises(ValueError, match="needs a task"):
        spec = InputSpec.of(SeriesInput(channels=2, window=8))
        create_objective("supervised", create_encoder("cnn_small", spec), spec)


def test_mask_ratios():
    g = torch.Generator().manual_seed(0)
    assert abs(random_mask((64, 8, 100), 0.15, g).float().mean() - 0.15) < 0.01
    sub = subsequence_mask((64, 8, 200), 0.15, span=4.0, generator=g)
    assert abs(sub.float().mean() - 0.15) < 0.03
    runs = (sub[:, :, 1:] & ~sub[:, :, :-1]).sum()  # masked runs start where mask turns on
    assert sub.sum() / runs > 2.5  # contiguous spans, not single points
