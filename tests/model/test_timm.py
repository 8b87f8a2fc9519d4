"""Image encoders from timm: any model by name, feature pyramids, pretrained weights from a file,
a folder, the offline EfficientNet-Lite0 package (key map proven by a linear probe), or the hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferline.data import ImageInput
from transferline.encoders import create_encoder
from transferline.encoders.timm_backbones import _efficientnet_lite0_file, read_state, to_timm_keys
from transferline.errors import TransferlineError


def test_any_timm_model_by_name_with_its_pyramid():
    torch.manual_seed(0)
    encoder = create_encoder("timm/resnet18", ImageInput(size=(64, 64), channels=1)).eval()
    x = torch.randn(2, 1, 64, 64)
    assert encoder(x).shape == (2, 512) and encoder.name == "timm/resnet18" and encoder.modality == "image"
    maps = encoder.pyramid(x)
    assert [m.shape[1] for m in maps] == encoder.pyramid_channels
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]  # strides 2 … 32
    with pytest.raises(ValueError, match="timm has no model 'resnet_nope'"):
        create_encoder("timm/resnet_nope", ImageInput())


def test_lukemelas_weights_map_strictly_onto_timm_tf_efficientnet_lite0():
    import timm

    state = to_timm_keys(read_state(_efficientnet_lite0_file()))
    full = timm.create_model("tf_efficientnet_lite0")  # with its classifier: every key must match
    full.load_state_dict(state, strict=True)
    assert torch.equal(full.blocks[6][0].conv_pwl.weight, state["blocks.6.0.conv_pwl.weight"])


def test_weights_from_a_file_and_a_folder_and_clear_errors(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    spec = ImageInput(size=(32, 32))
    source = create_encoder("timm/resnet18", spec)
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    (tmp_path / "folder").mkdir()
    torch.save(source.model.state_dict(), tmp_path / "folder" / "pytorch_model.bin")
    x = torch.randn(2, 3, 32, 32)
    expected = source.eval()(x)
    for where in (tmp_path / "w.safetensors", tmp_path / "folder"):
        loaded = create_encoder("timm/resnet18", spec, pretrained=str(where)).eval()
        torch.testing.assert_close(loaded(x), expected)
    gray = create_encoder("timm/resnet18", ImageInput(size=(32, 32), channels=1, mean=(0.5,), std=(0.5,)),
                          pretrained=str(tmp_path / "w.safetensors"))  # RGB stem summed to one channel
    assert gray.model.conv1.weight.shape[1] == 1
    with pytest.raises(TransferlineError, match="do not fit timm resnet34"):
        create_encoder("timm/resnet34", spec, pretrained=str(tmp_path / "w.safetensors"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferlineError, match="a folder without weights"):
        create_encoder("timm/resnet18", spec, pretrained=str(tmp_path / "empty"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TransferlineError, match="junk.pth: cannot read weights"):
        create_encoder("timm/resnet18", spec, pretrained=str(tmp_path / "junk.pth"))


def test_offline_and_missing_hub_weights_name_the_file_to_provide(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(TransferlineError, match=r"HF_HUB_OFFLINE is set.*model.safetensors of "
                                                r"https://huggingface.co/timm/resnet18"):
        create_encoder("timm/resnet18", ImageInput(size=(32, 32)), pretrained="imagenet")


@pytest.mark.slow
def test_imagenet_weights_beat_random_init_on_a_linear_probe(neu_catalog):
    """The mapped ImageNet weights must carry real features: on the vendored NEU images a linear
    probe on frozen features beats the same probe on randomly initialized ones by a wide margin."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from transferline.data.factory import load_samples

    spec = ImageInput(size=(160, 160), mean=(0.5,) * 3, std=(0.5,) * 3)
    samples = load_samples(neu_catalog, "neu", spec)
    scores = {}
    for pretrained in (None, "imagenet"):
        torch.manual_seed(0)
        encoder = create_encoder("timm/tf_efficientnet_lite0", spec, pretrained=pretrained).eval()
        with torch.no_grad():
            features = np.concatenate([encoder(b.inputs).numpy() for b in samples.batches(40)])
        features = (features - features.mean(0)) / (features.std(0) + 1e-6)
        scores[pretrained] = cross_val_score(LogisticRegression(max_iter=2000, C=0.5), features, samples.labels,
                                             cv=5).mean()
    assert scores["imagenet"] >= 0.9 and scores["imagenet"] >= scores[None] + 0.1, scores
