"""Set-points from a surrogate: constraints met with enough probability, extrapolation flagged,
infeasible asks answered as such, and the next experiments from BoTorch."""

from __future__ import annotations

import numpy as np
import pytest

from transferline.process import predict, summarize
from transferline.process.recommend import Problem, RecommendError, next_experiments, recommend


def _problem(data, **kw):
    args = {"bounds": None, "objective": "max:feedrate", "constraints": ["passed_visual_inspection>=0.9"]}
    return Problem.parse(data.setpoints, data.outcomes, data.ranges(), **{**args, **kw})


def _recommend(model, data, problem, **kw):
    return recommend(lambda x: predict(model, x), problem, observed_X=data.X, observed_Y=data.Y, **kw)


def test_recommendations_meet_the_constraints_and_rank_by_the_objective(cnc_model, cnc_data):
    problem = _problem(cnc_data, constraints=["passed_visual_inspection>=0.9", "machining_finalized>=0.9"])
    answer = _recommend(cnc_model, cnc_data, problem, top=4)
    rows = answer["recommendations"]
    assert answer["feasible"] and len(rows) == 4
    feeds = [r["setpoints"]["feedrate"] for r in rows]
    assert feeds == sorted(feeds, reverse=True)
    for row in rows:
        assert row["p_constraints"] >= 0.8
        assert 3 <= row["setpoints"]["feedrate"] <= 20 and 2.5 <= row["setpoints"]["clamp_pressure"] <= 4
        # the reported probability is the share of members meeting both constraints at that point
        x = np.array([[row["setpoints"]["feedrate"], row["setpoints"]["clamp_pressure"]]])
        members = predict(cnc_model, x)[0, :, :, 0]
        share = np.mean((members[:, 2] >= 0.9) & (members[:, 1] >= 0.9))
        assert row["p_constraints"] == pytest.approx(share)
        mean = summarize(predict(cnc_model, x), cnc_data.outcomes)["mean"][0]
        assert row["outcomes"]["passed_visual_inspection"]["mean"] == pytest.approx(mean[2])
        lo, hi = row["outcomes"]["passed_visual_inspection"]["interval_90"]
        assert lo <= mean[2] <= hi
    spread = np.array([[r["setpoints"]["feedrate"] / 17, r["setpoints"]["clamp_pressure"] / 1.5] for r in rows])
    assert min(np.abs(a - b).max() for i, a in enumerate(spread) for b in spread[i + 1:]) >= 0.05 - 1e-9
    # a feedrate as fast as the fastest observed passing run (20 mm/s) is the reference: nothing improves on it
    assert answer["reference"] == {"objective": 20.0, "from": "best observed run meeting the constraints"}


def test_expected_improvement_over_todays_setpoint(cnc_model, cnc_data):
    answer = _recommend(cnc_model, cnc_data, _problem(cnc_data), current={"feedrate": 3.0, "clamp_pressure": 4.0})
    best = answer["recommendations"][0]
    assert answer["reference"]["from"] == "current" and answer["reference"]["objective"] == 3.0
    assert 0 < best["expected_improvement"] <= best["setpoints"]["feedrate"] - 3.0


def test_extrapolation_is_flagged_and_an_impossible_ask_gets_a_plain_answer(cnc_model, cnc_data):
    wide = _problem(cnc_data, bounds={"feedrate": (3.0, 30.0)})
    assert wide.warnings(cnc_data.ranges()) == [
        "feedrate: bounds 3:30 reach outside the fitted data (3:20); predictions there are extrapolations"]
    impossible = _problem(cnc_data, constraints=["passed_visual_inspection>=0.9", "tool_condition>=0.99999"],
                          min_probability=1.0)
    answer = _recommend(cnc_model, cnc_data, impossible)
    assert not answer["feasible"] and answer["recommendations"] == []
    assert answer["message"].startswith("no set-point within the bounds meets passed_visual_inspection>=0.9 and "
                                        "tool_condition>=0.99999 with probability ≥ 1")
    assert 0 <= answer["closest"]["p_constraints"] < 1


@pytest.mark.parametrize("kw, field, text", [
    ({"objective": "max:speed"}, "objective", "max:NAME or min:NAME"),
    ({"bounds": {"spindle": (1, 2)}}, "bounds", "'spindle' is not a set-point"),
    ({"bounds": {"feedrate": (9, 3)}}, "bounds", "low end 9 exceeds the high end 3"),
    ({"bounds": {"feedrate": (float("nan"), 3)}}, "bounds", "two finite numbers"),
    ({"constraints": ["passed_visual_inspection=>0.9"]}, "constraints", "OUTCOME>=NUMBER"),
    ({"constraints": ["quality>=0.9"]}, "constraints", "OUTCOME one of tool_condition"),
    ({"min_probability": 0.0}, "min_probability", "(0, 1]"),
])
def test_a_bad_ask_names_its_field(cnc_data, kw, field, text):
    with pytest.raises(RecommendError, match=None) as info:
        _problem(cnc_data, **kw)
    assert info.value.field == field and text in info.value.message


def test_next_experiments_by_botorch_lie_in_the_box(cnc_model, cnc_data):
    problem = _problem(cnc_data, bounds={"feedrate": (3.0, 12.0), "clamp_pressure": (3.0, 4.0)})
    out = next_experiments(cnc_model, problem, cnc_data.X, q=2, seed=0)
    assert out["acquisition"].startswith("qLogNoisyExpectedImprovement") and len(out["next"]) == 2
    for x in out["next"]:
        assert 3.0 <= x["feedrate"] <= 12.0 and 3.0 <= x["clamp_pressure"] <= 4.0
    assert np.isfinite(out["log_acquisition_value"])


def test_context_inputs_are_fixed_and_the_reference_comes_from_the_same_context(cnc_catalog):
    from transferline.process import SurrogateConfig, fit_surrogate, load_process_data

    data = load_process_data(cnc_catalog, "cnc", context=["tool_condition"])
    assert [o.name for o in data.outcomes] == ["machining_finalized", "passed_visual_inspection"]
    assert data.inputs == ["feedrate", "clamp_pressure", "tool_condition"] and data.X.shape == (18, 3)
    model = fit_surrogate(data, SurrogateConfig(members=6, epochs=150))
    ask = {"bounds": None, "objective": "max:feedrate", "constraints": ["passed_visual_inspection>=0.9"],
           "context_spec": data.context}
    worn = Problem.parse(data.setpoints, data.outcomes, data.ranges(), **ask, context={"tool_condition": "worn"})
    assert worn.context == {"tool_condition": 1.0}
    answer = _recommend(model, data, worn)
    # worn tools passed inspection at 3 and 6 mm/s only (runs 13-15, 18): the reference is 6, not unworn run 2's 20
    assert answer["reference"]["objective"] == 6.0
    for row in answer["recommendations"]:
        x = np.array([[row["setpoints"]["feedrate"], row["setpoints"]["clamp_pressure"], 1.0]])
        share = np.mean(predict(model, x)[0, :, 1, 0] >= 0.9)
        assert row["p_constraints"] == pytest.approx(share)
    out = next_experiments(model, worn, data.X, q=1)
    assert set(out["next"][0]) == {"feedrate", "clamp_pressure"}
    for given, text in (({}, "this model also takes tool_condition (worn or unworn)"),
                        ({"tool_condition": "new"}, "'new' is neither 'worn' nor 'unworn'"),
                        ({"tool_condition": "worn", "coolant": 1}, "'coolant' is not a context input")):
        with pytest.raises(RecommendError) as info:
            Problem.parse(data.setpoints, data.outcomes, data.ranges(), **ask, context=given)
        assert info.value.field == "context" and text in info.value.message


def test_candidates_add_the_corners_only_while_they_are_few():
    from transferline.process import Outcome
    from transferline.process.recommend import candidates

    outcomes = [Outcome("ok", "binary", "yes", "no")]
    for d, corners in ((2, 4), (8, 256), (12, 0)):
        names = [f"x{i}" for i in range(d)]
        problem = Problem.parse(names, outcomes, {n: [0.0, 2.0] for n in names}, bounds=None, objective="max:x0")
        X = candidates(problem, n=64)
        assert X.shape == (64 + corners, d) and X.min() >= 0 and X.max() <= 2
        assert (np.all((X == 0) | (X == 2), axis=1).sum() >= corners)
