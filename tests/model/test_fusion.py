"""The fusion encoder: an absent input has no say in the features, whatever its tensor holds."""

from __future__ import annotations

import pytest
import torch

from transferline.data.inputs import InputSpec, SeriesInput
from transferline.data.multimodal import PRESENT
from transferline.encoders import create_encoder

SPEC = InputSpec({"de": SeriesInput(channels=1, window=256), "fe": SeriesInput(channels=1, window=256),
                  "ba": SeriesInput(channels=2, window=256)})


def _inputs(batch: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, s.channels, s.window, generator=g) for name, s in SPEC.modalities.items()}


@pytest.mark.parametrize("fusion", ["concat", "gated", "attention"])
def test_an_absent_input_does_not_change_the_features(fusion):
    torch.manual_seed(0)
    encoder = create_encoder("fusion", SPEC, encoders="cnn_small", fusion=fusion, dim=32).eval()
    x = _inputs()
    present = torch.tensor([[True, True, True], [True, False, True], [False, False, True],
                            [True, True, False], [True, False, False], [False, True, True]])
    noisy = {**x, "fe": torch.where(present[:, 1, None, None], x["fe"], torch.randn_like(x["fe"]) * 100)}
    with torch.no_grad():
        a = encoder({**x, PRESENT: present})
        b = encoder({**noisy, PRESENT: present})
        full = encoder(x)
    assert a.shape == (6, encoder.out_dim) == (6, 96 if fusion == "concat" else 32)
    torch.testing.assert_close(a, b)
    assert torch.allclose(a[0], full[0], atol=1e-5)  # every input present: as without a mask
    assert not torch.allclose(a[1], full[1], atol=1e-3)  # an input absent: other features


def test_gated_weights_are_zero_for_absent_inputs():
    encoder = create_encoder("fusion", SPEC, encoders="cnn_small", fusion="gated", dim=16).eval()
    present = torch.tensor([[True, False, True], [False, False, True]])
    with torch.no_grad():
        encoder({**_inputs(2), PRESENT: present})
    w = encoder.last_weights
    assert (w[~present] == 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2))


def test_modality_dropout_keeps_one_input_per_sample():
    encoder = create_encoder("fusion", SPEC, encoders="cnn_small", modality_dropout=0.9)
    present = torch.rand(4000, 3) < 0.7
    present[0] = False  # a sample without inputs stays without
    dropped = encoder._drop(present)
    assert not (dropped & ~present).any()  # never makes an absent input present
    assert dropped[1:][present[1:].any(dim=1)].any(dim=1).all()
    assert 0.05 < dropped.sum() / present.sum() < 0.5


def test_training_sees_only_the_present_samples_of_each_input():
    """While training, an input's encoder runs on the samples that have it: its batch-norm
    statistics are those of real signals, not of the zeros standing in for absent ones."""
    torch.manual_seed(0)
    encoder = create_encoder("fusion", SPEC, encoders="cnn_small", fusion="gated", dim=16, modality_dropout=0.0)
    x = _inputs(8)
    present = torch.ones(8, 3, dtype=torch.bool)
    present[4:, 1] = False
    x["fe"][4:] = 0.0
    seen = []
    encoder.encoders["fe"].register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    out = encoder({**x, PRESENT: present})
    out.sum().backward()
    assert seen == [4]
    assert encoder.encoders["fe"].body[0][0].weight.grad.abs().sum() > 0


def test_encoders_per_input_and_clear_errors():
    encoder = create_encoder("fusion", SPEC, encoders={"de": "wdcnn", "fe": "cnn_small",
                                                       "ba": {"name": "cnn_small", "options": {"width": 8}}})
    assert type(encoder.encoders["de"]).__name__ == "WDCNN" and encoder.encoders["ba"].out_dim == 8
    with pytest.raises(ValueError, match=r"no encoder for input 'ba'"):
        create_encoder("fusion", SPEC, encoders={"de": "wdcnn", "fe": "wdcnn"})
    with pytest.raises(ValueError, match=r"encoders for input\(s\) \['xy'\], which the data does not have"):
        create_encoder("fusion", SPEC, encoders={"de": "wdcnn", "fe": "wdcnn", "ba": "wdcnn", "xy": "wdcnn"})
    with pytest.raises(ValueError, match="fusion must be one of concat, gated, attention"):
        create_encoder("fusion", SPEC, fusion="sum")
    with pytest.raises(ValueError, match="takes an input spec with named inputs"):
        create_encoder("fusion", SPEC["de"])
    with pytest.raises(KeyError, match=r"inputs \['ba'\] are not in the batch"):
        encoder({"de": torch.zeros(2, 1, 256), "fe": torch.zeros(2, 1, 256)})


def test_named_inputs_round_trip():
    assert InputSpec.from_dict(SPEC.to_dict()) == SPEC
    assert SPEC.to_dict()["ba"]["modality"] == "series"
    with pytest.raises(ValueError, match="input spec cam: unknown modality 'video'"):
        InputSpec.from_dict({"cam": {"modality": "video"}})
