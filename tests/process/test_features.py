"""Run features from the first seconds of layer-1 machining through a series encoder, scratch or
pretrained on the tool-wear task by the one training loop; refitted per fold without the held-out run."""

from __future__ import annotations

import numpy as np
import pytest

from transferline.process.features import SignalFeatures, fold_features, run_windows


def test_windows_cover_the_first_steps_of_layer_one(cnc_catalog, cnc_data):
    spec = SignalFeatures(steps=120, window=40, stride=20)
    windows = run_windows(cnc_catalog, cnc_data, spec)
    assert windows.classes == ["unworn", "worn"] and len(windows.channels) == 47
    frame = cnc_catalog.read("cnc", columns=["asset", "step", "Machining_Process"]).to_pandas()
    for a, name in enumerate(windows.asset_names):
        rows = frame[frame.asset == name.split("/")[-1]].sort_values("step")
        start = int(np.flatnonzero(rows.Machining_Process.str.startswith("Layer 1").to_numpy())[0])
        offsets = windows.ends[windows.assets == a] - windows.length - windows.asset_starts[windows.assets == a]
        assert len(offsets) >= 4 and offsets.min() >= start and offsets.max() + 40 <= start + 120
    whole = run_windows(cnc_catalog, cnc_data, SignalFeatures(steps=120, phase=None))
    assert (whole.ends - whole.length - whole.asset_starts).min() <= 20  # from the run's start instead


def test_features_of_a_fold_never_see_the_held_out_run(cnc_catalog, cnc_data):
    spec = SignalFeatures(epochs=2, dims=2)
    windows = run_windows(cnc_catalog, cnc_data, spec)
    train = np.arange(1, 18)
    feats = fold_features(windows, cnc_data, train, spec)
    assert feats.shape == (18, 2) and np.isfinite(feats).all()
    # flip the held-out run's tool condition: its features (and everyone's) stay the same
    flipped = windows.__class__(**{**vars(windows), "labels": windows.labels.copy()})
    held = np.flatnonzero(windows.assets == 0)
    flipped.labels[held] = 1 - flipped.labels[held]
    np.testing.assert_allclose(fold_features(flipped, cnc_data, train, spec), feats, atol=1e-5)
    scratch = fold_features(windows, cnc_data, train, SignalFeatures(pretrain="scratch", dims=2))
    assert np.abs(scratch - feats).max() > 1e-3  # pretraining changed the encoder


def test_bad_signal_options_are_refused():
    with pytest.raises(ValueError, match="pretrain 'scratch' or 'tool_wear'"):
        SignalFeatures(pretrain="imagenet")
    with pytest.raises(ValueError, match="window 300 must lie in 1..steps"):
        SignalFeatures(window=300)


def test_fit_compares_signal_features_from_the_command_line(cnc_catalog, tmp_path, cli):
    import json

    code, out, err = cli("process", "fit", "--dataset", "cnc", "--catalog", cnc_catalog.root, "--out", tmp_path / "run",
                         "--members", "4", "--epochs", "60", "--no-eval", "--compare-signals", "scratch")
    assert code == 0, err
    assert "set-points + first 120 steps of signals (scratch encoder):" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["with_signals"]["scratch"]) == {"tool_condition", "machining_finalized",
                                                       "passed_visual_inspection"}
