"""Pretraining objectives: one step each, losses finite, gradients reach the encoder; masks."""

from __future__ import annotations

import pytest
import torch

from transferline.data import Batch, InputSpec, SeriesInput
from transferline.encoders import create_encoder
from transferline.objectives import create_objective, list_objectives, random_mask, subsequence_mask
from transferline.tasks import create_task


def _for(modality: str) -> list[str]:
    from transferline.objectives._base import OBJECTIVES

    return [n for n in list_objectives() if modality in (OBJECTIVES.info(n).get("modalities") or (modality,))]


@pytest.mark.parametrize("name", _for("series"))
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


@pytest.mark.parametrize("name", [n for n in _for("image") if n != "colorization"])
def test_image_objectives_step_and_reach_the_encoder(name):
    from transferline.data import ImageInput

    torch.manual_seed(0)
    spec = InputSpec.of(ImageInput(size=(64, 64), channels=3))
    encoder = create_encoder("timm/resnet18", spec)
    objective = create_objective(name, encoder, spec, task=create_task("fault_diagnosis", n_classes=3))
    out = objective.step(Batch({"image": torch.randn(6, 3, 64, 64)}, torch.randint(0, 3, (6,))), progress=0.5)
    assert torch.isfinite(out["loss"]) and out["loss"].dim() == 0
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_colorization_refuses_grayscale_and_series_only_objectives_name_the_modality():
    from transferline.data import ImageInput

    spec = InputSpec.of(ImageInput(size=(32, 32)))
    encoder = create_encoder("timm/resnet18", spec)
    objective = create_objective("colorization", encoder, spec)
    colour = torch.randn(4, 3, 32, 32)
    assert torch.isfinite(objective.step(Batch({"image": colour}))["loss"])
    with pytest.raises(ValueError, match="grayscale"):
        objective.step(Batch({"image": colour[:, :1].expand(-1, 3, -1, -1)}))
    series = InputSpec.of(SeriesInput(channels=2, window=16))
    with pytest.raises(ValueError, match="objective 'rotation' learns from image inputs; encoder 'cnn_small' reads "
                                         "series"):
        create_objective("rotation", create_encoder("cnn_small", series), series)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['jitter'\]"):
        create_objective("contrastive", encoder, spec, jitter=0.1)


def test_image_augmentation_draws_per_image_views():
    from transferline.objectives.visual import augment_images, patch_mask

    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32).expand(4, -1, -1, -1)
    views = augment_images(x)
    assert views.shape == x.shape and not torch.allclose(views[0], views[1])  # each image its own parameters
    mask = patch_mask(8, 64, 64, 16, 0.5, "cpu")
    assert mask.shape == (8, 1, 64, 64) and 0.3 < mask.float().mean() < 0.7
    assert all(mask[i, 0, :16, :16].unique().numel() == 1 for i in range(8))  # whole patches
