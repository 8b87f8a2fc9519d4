"""Runs as rows (set-points → outcomes), the ensemble surrogate, and its leave-one-run-out scores."""

from __future__ import annotations

import numpy as np
import pytest

from transferline.process import (Outcome, SurrogateConfig, covered, fit_surrogate, leave_one_run_out, load_process_data,
                                  predict, summarize)
from transferline.process.surrogate import merge


def test_one_row_per_run_with_binary_outcomes_and_missing_inspections(cnc_data):
    assert len(cnc_data.runs) == 18 and cnc_data.setpoints == ["feedrate", "clamp_pressure"]
    assert [(o.name, o.positive) for o in cnc_data.outcomes] == [
        ("tool_condition", "worn"), ("machining_finalized", "yes"), ("passed_visual_inspection", "yes")]
    run = {r: i for i, r in enumerate(cnc_data.runs)}
    assert cnc_data.X[run["experiment_02"]].tolist() == [20.0, 4.0]  # train.csv row 2
    inspect = cnc_data.index("passed_visual_inspection")
    unfinished = [r for r in cnc_data.runs if np.isnan(cnc_data.Y[run[r], inspect])]
    assert unfinished == ["experiment_04", "experiment_05", "experiment_07", "experiment_16"]
    assert cnc_data.Y[run["experiment_06"]].tolist() == [1.0, 1.0, 0.0]  # worn, finalized, failed inspection
    assert cnc_data.ranges() == {"feedrate": [3.0, 20.0], "clamp_pressure": [2.5, 4.0]}


def test_a_dataset_without_a_run_table_is_refused_by_name(catalog, shared_data):
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog.ingest("fd1", create_reader("cmapss")(sample_path("cmapss"), subsets="FD001"))
    with pytest.raises(ValueError, match="no set-points and outcomes per run"):
        load_process_data(catalog, "fd1")


def test_members_shared_out_give_the_same_ensemble(cnc_data):
    config = SurrogateConfig(members=6, epochs=60, seed=3)
    whole = fit_surrogate(cnc_data, config)
    shares = merge([fit_surrogate(cnc_data, config, members=r) for r in (range(0, 2), range(2, 5), range(5, 6))])
    np.testing.assert_allclose(predict(whole, cnc_data.X), predict(shares, cnc_data.X), atol=1e-6)
    other = fit_surrogate(cnc_data, SurrogateConfig(members=6, epochs=60, seed=4))
    assert np.abs(predict(whole, cnc_data.X) - predict(other, cnc_data.X)).max() > 1e-3


def test_the_ensemble_learns_the_training_runs_and_disagrees_away_from_them(cnc_model, cnc_data):
    out = predict(cnc_model, cnc_data.X)  # [runs, members, outcomes, 2]
    assert out.shape == (18, 8, 3, 2) and ((out[..., 0] >= 0) & (out[..., 0] <= 1)).all()
    s = summarize(out, cnc_data.outcomes)
    j = cnc_data.index("machining_finalized")
    brier = np.mean((s["mean"][:, j] - cnc_data.Y[:, j]) ** 2)
    prevalence = np.mean((cnc_data.Y[:, j].mean() - cnc_data.Y[:, j]) ** 2)
    assert brier < 0.5 * prevalence, (brier, prevalence)
    # where runs agree (feedrate 3, 4 bar: every run there passed) the members do too; past the
    # fastest feedrate tried they do not
    k = cnc_data.index("passed_visual_inspection")
    width = lambda x: (lambda s: s["hi"][0, k] - s["lo"][0, k])(summarize(predict(cnc_model, np.array([x])),  # noqa: E731
                                                                          cnc_data.outcomes))
    assert width([3.0, 4.0]) < 0.1 and width([30.0, 4.0]) > 0.3, (width([3.0, 4.0]), width([30.0, 4.0]))


def test_prediction_sets_cover_by_their_definition():
    outcomes = [Outcome("pass", "binary", "yes", "no"), Outcome("width", "numeric")]
    summary = {"mean": np.array([[0.95, 5.0], [0.5, 5.0], [0.02, 5.0]]),
               "lo": np.array([[0.9, 4.0], [0.1, 4.0], [0.0, 4.0]]), "hi": np.array([[1.0, 6.0], [0.9, 6.0], [0.1, 6.0]])}
    Y = np.array([[0.0, 6.5], [0.0, 4.5], [np.nan, 5.0]])
    # p=0.95: the 90 % set is {yes}; p=0.5: {yes, no}; a missing outcome is not scored
    np.testing.assert_array_equal(covered(summary, Y, outcomes), [[0.0, 0.0], [1.0, 1.0], [np.nan, 1.0]])


def test_leave_one_run_out_scores_every_observed_outcome(cnc_data):
    result = leave_one_run_out(cnc_data, SurrogateConfig(members=4, epochs=80))
    m = result["metrics"]
    assert m["passed_visual_inspection"]["runs"] == 14 and m["machining_finalized"]["runs"] == 18
    for scores in m.values():
        assert 0 <= scores["coverage_90"] <= 1 and 0 <= scores["brier"] <= 1 and 0 <= scores["auroc"] <= 1
    held = result["predictions"]["mean"]
    assert not np.isnan(held).any()
    # held out means held out: refitting with a run's own label flipped does not move its prediction
    flipped = cnc_data.__class__(**{**vars(cnc_data), "Y": cnc_data.Y.copy()})
    j = cnc_data.index("machining_finalized")
    flipped.Y[0, j] = 1 - flipped.Y[0, j]
    again = leave_one_run_out(flipped, SurrogateConfig(members=4, epochs=80), folds=[0])["predictions"]["mean"]
    np.testing.assert_allclose(again[0], held[0], atol=1e-6)
