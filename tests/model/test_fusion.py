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


def test_cross_modal_alignment_learns_which_embeddings_belong_together():
    """Two views of the same signals (a sensor and a noisy copy of it): aligning them lifts the
    accuracy of matching each sample's pair within the batch far above chance."""
    from transferline.data.batch import Batch
    from transferline.objectives import create_objective

    torch.manual_seed(0)
    spec = InputSpec({"a": SeriesInput(channels=1, window=128), "b": SeriesInput(channels=1, window=128)})
    encoder = create_encoder("fusion", spec, encoders="cnn_small", dim=32)
    objective = create_objective("cross_modal", encoder, spec)
    opt = torch.optim.Adam(objective.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    signals = torch.randn(512, 1, 128, generator=g).cumsum(-1)
    first = None
    for step in range(60):
        idx = torch.randint(0, 512, (32,), generator=g)
        x = signals[idx]
        out = objective.step(Batch({"a": x, "b": x + 0.3 * torch.randn_like(x)}))
        first = first if first is not None else float(out["pair_accuracy"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert float(out["pair_accuracy"]) > max(0.25, first + 0.2), (first, float(out["pair_accuracy"]))  # chance 1/32


def test_cross_modal_pairs_use_samples_with_both_inputs_and_check_options():
    from transferline.data.batch import Batch
    from transferline.objectives import create_objective

    encoder = create_encoder("fusion", SPEC, encoders="cnn_small", dim=16)
    anchored = create_objective("cross_modal", encoder, SPEC, anchor="de")
    assert anchored.pairs == [("de", "fe"), ("de", "ba")]
    assert create_objective("cross_modal", encoder, SPEC).pairs == [("de", "fe"), ("de", "ba"), ("fe", "ba")]
    present = torch.tensor([[True, True, False]] * 4 + [[True, False, True]] * 1)
    out = anchored.step(Batch({**_inputs(5), PRESENT: present}))
    out["loss"].backward()  # de-fe from four samples; de-ba from one sample: skipped
    assert torch.isfinite(out["loss"]) and encoder.encoders["ba"].body[0][0].weight.grad is None
    with pytest.raises(ValueError, match=r"anchor 'xy' is not an input"):
        create_objective("cross_modal", encoder, SPEC, anchor="xy")
    with pytest.raises(ValueError, match="objective 'cross_modal' learns from multi inputs"):
        create_objective("cross_modal", create_encoder("cnn_small", SPEC["de"]), InputSpec({"series": SPEC["de"]}))


def test_spectrogram_view_of_a_window():
    """A sine's spectrogram image has its energy in one frequency row band; the ImageNet backbone
    gives features of it."""
    encoder = create_encoder("spectrogram", SeriesInput(channels=1, window=1024), size=64).eval()
    t = torch.arange(1024) / 12000.0
    x = torch.sin(2 * torch.pi * 1500 * t)[None, None].repeat(2, 1, 1)
    image = encoder.to_image(x)
    assert image.shape == (2, 3, 64, 64) and torch.equal(image[:, 0], image[:, 2])
    rows = image[0, 0].mean(dim=1)
    assert abs(int(rows.argmax()) - round(64 * 1500 / 6000)) <= 2  # 1.5 kHz of 6 kHz Nyquist
    with torch.no_grad():
        assert encoder(x).shape == (2, encoder.out_dim) == (2, 1280)


def test_spectrogram_backbone_starts_from_imagenet_unless_told_not_to():
    """The default backbone holds the offline ImageNet weights; ``pretrained=False`` gives seeded
    random ones; a None option keeps the default (as every encoder option does)."""
    from transferline.encoders.timm_backbones import _efficientnet_lite0_file, read_state, to_timm_keys

    spec = SeriesInput(channels=1, window=1024)
    stem = to_timm_keys(read_state(_efficientnet_lite0_file()))["conv_stem.weight"]
    for options in ({}, {"pretrained": None}):
        encoder = create_encoder("spectrogram", spec, size=32, **options)
        assert torch.equal(encoder.image.model.conv_stem.weight, stem), options
    torch.manual_seed(0)
    first = create_encoder("spectrogram", spec, size=32, pretrained=False).image.model.conv_stem.weight
    torch.manual_seed(1)
    second = create_encoder("spectrogram", spec, size=32, pretrained=False).image.model.conv_stem.weight
    assert not torch.equal(first, stem) and not torch.equal(first, second)
