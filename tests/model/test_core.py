"""The modality-neutral core: input specs, dict batches, targets of any shape, accumulated metrics,
and the one preprocessing built from an input spec."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from transferline.adaptation import DomainBatch, create_adaptation
from transferline.data import Batch, ImageInput, InputSpec, SeriesInput, TabularInput, TextInput
from transferline.data.preprocess import build_preprocess, standardize
from transferline.encoders import create_encoder
from transferline.tasks import Task, create_task


def test_input_spec_round_trips_through_json():
    spec = InputSpec.of(SeriesInput(channels=2, window=5, signals=("a", "b"), normalize="group",
                                    group_by="operating_condition",
                                    normalizer={"groups": [0, -1], "mean": [[1, 2], [1, 2]], "std": [[1, 1], [1, 1]]}),
                        ImageInput(size=(32, 48), channels=1, mean=(0.5,), std=(0.25,)),
                        TextInput(tokenizer="some/folder", max_length=64), TabularInput(columns=("feed", "speed")))
    again = InputSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.names == ["series", "image", "text", "tabular"]
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        InputSpec.from_dict({"audio": {}})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        InputSpec.from_dict({"image": {"colour": True}})


def test_batch_cat_keeps_modalities_list_targets_and_presence():
    a = Batch({"series": torch.zeros(2, 3, 4)}, [{"boxes": torch.zeros(1, 4)}, {"boxes": torch.zeros(0, 4)}])
    b = Batch({"series": torch.ones(1, 3, 4)}, [{"boxes": torch.ones(2, 4)}],
              present=torch.tensor([[False]]))
    joined = Batch.cat([a, b])
    assert len(joined) == 3 and len(joined.target) == 3 and joined.target[2]["boxes"].shape == (2, 4)
    assert joined.present.tolist() == [[True], [True], [False]]
    with pytest.raises(ValueError, match="different modalities"):
        Batch.cat([a, Batch({"image": torch.zeros(1, 3, 2, 2)})])
    with pytest.raises(ValueError, match="labelled and unlabelled"):
        Batch.cat([a, Batch({"series": torch.zeros(1, 3, 4)})])


def test_multi_output_regression_trains_with_alignment_on_dict_batches():
    torch.manual_seed(0)
    task = create_task("regression", outputs=["wear", "roughness"], units=["mm", "um"], scale=[0.5, 2.0])
    encoder = create_encoder("cnn_small", SeriesInput(channels=3, window=16), width=16)
    model = create_adaptation("mmd", encoder, task.build_head(encoder.out_dim), task)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(64, 3, 16)
    y = torch.stack([x[:, 0].mean(-1) * 0.5, x[:, 1].std(-1) * 2.0], dim=-1)  # learnable from the input
    with torch.no_grad():
        before = task.metrics(model.eval()(x), y)["rmse"]
    model.train()
    for _ in range(150):
        out = model.step(DomainBatch(Batch({"series": x}, y), Batch({"series": x + 0.1})))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    evaluator = task.evaluator()
    model.eval()
    with torch.no_grad():
        for part in torch.split(torch.arange(64), 16):  # accumulated over batches = computed on the whole set
            evaluator.update(model({"series": x[part]}), y[part])
        whole = task.metrics(model(x), y)
    got = evaluator.compute()
    assert got == pytest.approx(whole) and got["rmse"] < 0.5 * before
    assert model(x).shape == (64, 2) and task.predict(model(x)).shape == (64, 2)
    assert task.output() == {"kind": "regression", "names": ["wear", "roughness"], "units": ["mm", "um"]}
    with pytest.raises(ValueError, match="units needs one value per output"):
        create_task("regression", outputs=["a", "b"], units=["mm"])


class _BoxCount(Task):
    """A task whose targets are per-sample dicts of boxes (as detection's are): predicts how many."""

    task_type = "regression"
    primary_metric = "count_error"

    def build_head(self, in_dim):
        return torch.nn.Linear(in_dim, 1)

    def sample_losses(self, output, targets):
        counts = torch.tensor([float(len(t["boxes"])) for t in targets], device=output.device)
        return (output.squeeze(-1) - counts) ** 2

    def predict(self, output):
        return output.squeeze(-1)

    def metrics(self, output, targets):
        counts = torch.tensor([float(len(t["boxes"])) for t in targets])
        return {"count_error": float((output.squeeze(-1) - counts).abs().mean()), "images": len(targets)}


def test_per_sample_list_targets_flow_through_adaptation_and_evaluation():
    torch.manual_seed(0)
    task = _BoxCount()
    encoder = create_encoder("cnn_small", SeriesInput(channels=1, window=8), width=8)
    model = create_adaptation("coral", encoder, task.build_head(encoder.out_dim), task)
    targets = [{"boxes": torch.zeros(i % 3, 4)} for i in range(6)]
    source = Batch({"series": torch.randn(6, 1, 8)}, targets)
    out = model.step(DomainBatch(source.to("cpu"), Batch({"series": torch.randn(6, 1, 8)})))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and "align" in out
    evaluator = task.evaluator()
    with torch.no_grad():
        evaluator.update(model({"series": source.inputs["series"][:3]}), targets[:3])
        evaluator.update(model({"series": source.inputs["series"][3:]}), targets[3:])
    assert evaluator.compute()["images"] == 6


def test_series_preprocess_is_standardize():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (4, 2, 10))
    groups = rng.integers(0, 2, (4, 10))
    norm = {"groups": [0, 1, -1], "mean": [[1, 2], [3, 4], [2, 3]], "std": [[1, 2], [2, 1], [1, 1]]}
    spec = SeriesInput(channels=2, window=10, normalize="group", normalizer=norm)
    expected = standardize(x, "group", mean=np.asarray(norm["mean"], float), std=np.asarray(norm["std"], float),
                           known=np.array([0, 1]), groups=groups)
    np.testing.assert_array_equal(build_preprocess(spec)(x, groups), expected)
    np.testing.assert_array_equal(build_preprocess(SeriesInput(channels=2, window=10))(x), standardize(x, "window"))
    with pytest.raises(ValueError, match="needs its fitted normalizer"):
        build_preprocess(SeriesInput(channels=2, window=10, normalize="group"))


@pytest.mark.parametrize("resize", ["stretch", "crop", "pad"])
def test_image_preprocess_from_bytes_and_arrays(resize):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    spec = ImageInput(size=(32, 32), channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize=resize)
    prep = build_preprocess(spec)
    from_bytes, from_array = prep([buf.getvalue()]), prep([pixels])
    assert from_bytes.shape == (1, 3, 32, 32) and from_bytes.dtype == np.float32
    np.testing.assert_array_equal(from_bytes, from_array)  # PNG is lossless: same pixels, same input
    np.testing.assert_array_equal(from_bytes[0, 0], from_bytes[0, 2])  # gray repeated to RGB
    assert from_bytes.min() >= -1 - 1e-6 and from_bytes.max() <= 1 + 1e-6
    if resize == "pad":  # 40x60 → 21x32 centred, the rest at the mean (0 after normalization)
        assert (from_bytes[0, :, :5] == 0).all() and (from_bytes[0, :, -5:] == 0).all()
    with pytest.raises(ValueError, match="uint8"):
        prep([pixels.astype(np.float32)])


def test_standardized_images_do_not_depend_on_exposure():
    """standardize: each channel of each image at zero mean and unit std, so the same surface at
    another exposure and gain gives the same model input (up to uint8 rounding)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 200, (32, 32), dtype=np.uint8)
    darker = np.round(pixels * 0.6 + 30).astype(np.uint8)
    x, y = build_preprocess(ImageInput(size=(32, 32), channels=3, standardize=True))([pixels, darker])
    np.testing.assert_allclose(x, y, atol=0.02)  # half a grey level of rounding in 31 of spread
    plain = build_preprocess(ImageInput(size=(32, 32), channels=3))([pixels, darker])
    assert np.abs(plain[0] - plain[1]).max() > 0.5  # without it, the two differ
    prep = build_preprocess(ImageInput(size=(32, 32), channels=3, resize="pad", standardize=True))
    x = prep([rng.integers(0, 256, (48, 64), dtype=np.uint8)])[0]
    image = x[:, 4:28]  # 48x64 → 24x32 centred: rows 4..27 are the image, the rest padding (zeros)
    np.testing.assert_allclose(image.mean((1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(image.std((1, 2)), 1, atol=1e-4)
    assert (x[:, :4] == 0).all() and (x[:, 28:] == 0).all()
    flat = prep([np.full((48, 64), 90, np.uint8)])
    assert np.isfinite(flat).all() and np.abs(flat).max() < 1e-4  # not rounding noise blown up


def test_served_rul_is_what_the_run_scores_never_below_zero(tmp_path):
    """A RUL head whose raw output is negative: the run's metrics score 0 cycles, and the exported
    model (ONNX, as served) answers 0 too, not the raw negative value."""
    from transferline.model_registry import InferenceModel
    from transferline.model_registry._export import export_onnx
    from transferline.model_registry._runtime import OnnxModule

    task = create_task("rul", scale=125)
    output = torch.tensor([[-0.2], [0.4]])
    assert task.predict(output).tolist() == [0.0, 50.0]
    assert task.metrics(output, torch.tensor([0.0, 50.0]))["rmse"] == 0.0
    spec = InputSpec({"series": SeriesInput(channels=2, window=8)})
    encoder = create_encoder("cnn_small", spec, width=4)
    head = task.build_head(encoder.out_dim)
    with torch.no_grad():
        head[-1].bias.fill_(-5.0)
        head[-1].weight.zero_()
    model = InferenceModel(encoder, head, task).eval()
    x = torch.randn(3, 2, 8)
    assert model(x).tolist() == [0.0, 0.0, 0.0]
    export_onnx(model, x, tmp_path / "m.onnx")
    assert OnnxModule(tmp_path / "m.onnx")(x).tolist() == [0.0, 0.0, 0.0]
