"""Contract tests over every registered encoder: forward, backward, shape, determinism."""

from __future__ import annotations

import pytest
import torch

from transferline.data import ImageInput, InputSpec, SeriesInput, TabularInput, TextInput
from transferline.encoders import Encoder, create_encoder, encoder_modality, encoder_name, list_encoders


def _input(name: str) -> tuple[int, int]:
    return (1, 1024) if name in ("wdcnn", "spectrogram") else (14, 30)


def _spec_and_input(name: str, batch: int):
    """A small input of the encoder's modality."""
    if encoder_modality(name) == "image":
        return ImageInput(size=(64, 64), channels=3), torch.randn(batch, 3, 64, 64)
    if encoder_modality(name) == "text":
        ids = torch.randint(1000, 2000, (batch, 16))
        ids[:, 10:] = 0  # padding
        return TextInput(max_length=16), ids
    if encoder_modality(name) == "tabular":
        return TabularInput(("feedrate", "clamp_pressure", "spindle_speed")), torch.randn(batch, 3)
    c_in, length = _input(name)
    return SeriesInput(channels=c_in, window=length), torch.randn(batch, c_in, length)


def test_registry_lists_required_families():
    names = set(list_encoders())
    assert {"tsai/inception_time", "tsai/inception_small", "tsai/resnet", "tsai/tst", "tsai/lstm_fcn",
            "tsai/sequencer", "wdcnn", "cnn_small", "lstm"} <= names


@pytest.mark.parametrize("old", ["inception_time", "inception_small", "resnet", "tst", "lstm_fcn"])
def test_names_before_families_still_work(old):
    assert encoder_name(old) == f"tsai/{old}"
    encoder = create_encoder(old, SeriesInput(channels=3, window=32))
    assert encoder.name == f"tsai/{old}" and encoder.modality == "series"


def test_encoder_picks_its_modality_from_a_dict_and_checks_the_spec():
    torch.manual_seed(0)
    spec = InputSpec.of(SeriesInput(channels=3, window=16), ImageInput(size=(8, 8)))
    encoder = create_encoder("cnn_small", spec).eval()  # takes the series entry of a multi-modal spec
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(encoder({"series": x, "image": torch.randn(2, 3, 8, 8)}), encoder(x))
    with pytest.raises(ValueError, match="takes series inputs, not image"):
        create_encoder("cnn_small", ImageInput())
    with pytest.raises(ValueError, match="takes series, image, not 'text'"):
        spec["text"]


# one input each (the fusion encoder of several inputs: test_fusion.py)
SINGLE = [n for n in list_encoders() if encoder_modality(n) != "multi"]


@pytest.mark.parametrize("name", SINGLE)
def test_forward_backward_shape(name):
    torch.manual_seed(0)
    spec, x = _spec_and_input(name, 3)
    encoder = create_encoder(name, spec)
    assert isinstance(encoder, Encoder) and encoder.out_dim > 0 and encoder.modality == spec.modality
    differentiable = x.is_floating_point()  # token ids are not
    x.requires_grad_(differentiable)
    features = encoder(x)
    assert features.shape == (3, encoder.out_dim) and torch.isfinite(features).all()
    features.pow(2).mean().backward()
    assert not differentiable or (x.grad is not None and x.grad.abs().sum() > 0)
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)
    seq = encoder.forward_features(x)
    if encoder.sequence_features:
        assert seq.shape == (3, encoder.out_dim, x.shape[-1])


@pytest.mark.parametrize("name", SINGLE)
def test_deterministic_under_seed(name):
    spec, x = _spec_and_input(name, 2)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        encoder = create_encoder(name, spec).eval()
        outs.append(encoder(x))
    torch.testing.assert_close(outs[0], outs[1])


def test_unknown_encoder_lists_known():
    with pytest.raises(ValueError, match="known: .*cnn_small"):
        create_encoder("nope", SeriesInput(channels=1, window=10))


def test_unset_options_keep_preset():
    assert create_encoder("cnn_small", SeriesInput(channels=14, window=30), width=None).out_dim == 64
    assert create_encoder("cnn_small", SeriesInput(channels=14, window=30), width=32).out_dim == 32
