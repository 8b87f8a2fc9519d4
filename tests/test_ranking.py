"""Source ranking: the scores against their definitions on tiny inputs, and `transferline rank` on
pretraining runs of the vendored C-MAPSS sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferline.ranking import h_score, knn_score, leep, linear_score, logme

from .conftest import REPO, cmapss_sample_catalog


def test_logme_is_the_maximum_log_evidence_of_a_bayesian_linear_model():
    from scipy.optimize import minimize
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    f = rng.standard_normal((40, 6))
    y = f @ rng.standard_normal(6) + 0.5 * rng.standard_normal(40)
    y = (y - y.mean()) / y.std()  # logme scores the standardized target

    def neg_evidence(log_ab):  # y ~ N(0, FFᵀ/α + I/β), maximized over α and β directly
        alpha, beta = np.exp(log_ab)
        return -multivariate_normal(np.zeros(40), f @ f.T / alpha + np.eye(40) / beta).logpdf(y)

    best = minimize(neg_evidence, x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
    assert logme(f, y, regression=True) == pytest.approx(-best.fun / 40, abs=1e-4)
    # more features than samples: the d − n zero eigenvalues still count
    wide = rng.standard_normal((10, 25))
    target = wide[:, 0] + 0.1 * rng.standard_normal(10)
    target = (target - target.mean()) / target.std()
    best = minimize(lambda ab: -multivariate_normal(np.zeros(10), wide @ wide.T / np.exp(ab[0]) +
                                                    np.eye(10) / np.exp(ab[1])).logpdf(target),
                    x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
    assert logme(wide, target, regression=True) == pytest.approx(-best.fun / 10, abs=1e-4)


def test_logme_and_hscore_prefer_features_that_carry_the_classes():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    informative = np.eye(3)[y] * 3 + rng.standard_normal((90, 3))
    noise = rng.standard_normal((90, 3))
    assert logme(informative, y, regression=False) > logme(noise, y, regression=False) + 0.3
    assert h_score(informative, y, regression=False) > 1.0 > 0.2 > h_score(noise, y, regression=False)
    rul = np.linspace(0, 125, 90)
    assert h_score(np.c_[rul / 50 + 0.1 * rng.standard_normal(90), noise[:, :2]], rul, regression=True) > \
        h_score(noise, rul, regression=True)


def test_leep_by_hand():
    theta = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # source class probabilities of 3 target samples
    y = np.array([0, 1, 0])
    joint = np.array([[0.9 + 0.6, 0.1 + 0.4], [0.2, 0.8]]) / 3  # P(y, z)
    cond = joint / joint.sum(axis=0)  # P(y | z)
    expected = np.mean([np.log(theta[i] @ cond[y[i]]) for i in range(3)])
    assert leep(theta, y) == pytest.approx(expected, abs=1e-9)


def test_knn_folds_keep_each_unit_whole():
    """Windows of one unit share its label and sit together: without groups k-NN finds them."""
    rng = np.random.default_rng(2)
    unit = np.repeat(np.arange(10), 20)
    features = np.eye(10)[unit] + 0.01 * rng.standard_normal((200, 10))
    labels = rng.uniform(0, 125, 10)[unit]
    assert knn_score(features, labels, None, regression=True) > -1.0  # leaks: neighbours of the same unit
    assert knn_score(features, labels, unit, regression=True) < -20.0  # units held out: nothing to find
    classes = np.repeat(np.arange(2), 6)
    assert knn_score(np.c_[classes, rng.standard_normal(12)], classes, None, regression=False, k=3) == 1.0


def test_linear_probe_folds_keep_each_unit_whole_and_prefer_informative_features():
    """A unit's one-hot column lets a ridge probe recall the unit's label only if the unit is in
    its training fold; features that carry the label score above features that do not."""
    rng = np.random.default_rng(3)
    unit = np.repeat(np.arange(10), 20)
    labels = rng.uniform(0, 125, 10)[unit]
    one_hot = np.eye(10)[unit] + 0.01 * rng.standard_normal((200, 10))
    assert linear_score(one_hot, labels, None, regression=True) > -5.0  # leaks through the unit's column
    assert linear_score(one_hot, labels, unit, regression=True) < -20.0  # units held out: nothing to recall
    informative = np.c_[labels + rng.normal(0, 5, 200), rng.standard_normal((200, 3))]
    noise = rng.standard_normal((200, 4))
    assert linear_score(informative, labels, unit, regression=True) > -8.0 > linear_score(noise, labels, unit,
                                                                                          regression=True)
    classes = np.repeat(np.arange(2), 6)
    assert linear_score(np.c_[classes, 0.1 * rng.standard_normal(12)], classes, None, regression=False) == 1.0


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    """Two supervised RUL pretraining runs on FD002 of the sample: 150 steps and 1 step."""
    from transferline.train import load_config, train_loop

    root = tmp_path_factory.mktemp("rank")
    catalog = cmapss_sample_catalog(root / "catalog")
    runs = {}
    for name, epochs, steps in (("trained", 5, 30), ("barely", 1, 1)):
        config = load_config(REPO / "examples" / "configs" / "demo_pretrain.yaml",
                             [f"catalog={catalog.root}", "objective=supervised", f"epochs={epochs}",
                              f"optim.max_steps_per_epoch={steps}", "progress=false", "tracking.mlflow=false"])
        config["run_dir"] = str(root / name)
        train_loop(config)
        runs[name] = root / name
    return catalog, runs


@pytest.mark.slow
def test_rank_cli_orders_candidates_and_writes_json(candidates, tmp_path, cli):
    catalog, runs = candidates
    out = tmp_path / "ranking.json"
    code, stdout, err = cli("rank", "--target", "cmapss-sample:FD001", "--candidates", runs["barely"], runs["trained"],
                            "--labelled-units", "4", "--catalog", catalog.root, "--json", out, "--quiet")
    assert code == 0, err
    assert "cmapss-sample:FD001:" in stdout and "ranked by mean_rank" in stdout
    ranking = json.loads(out.read_text())
    assert [c["run_dir"] for c in ranking["candidates"]] == [str(runs["trained"]), str(runs["barely"])]
    trained, barely = ranking["candidates"]
    for m in ("logme", "hscore", "knn"):
        assert np.isfinite(trained["scores"][m]) and trained["scores"][m] > barely["scores"][m], m
    assert trained["samples"] == barely["samples"] > 100  # every window of the 4 labelled engines


def test_rank_names_what_is_wrong(candidates, tmp_path, cli):
    catalog, runs = candidates
    code, _, err = cli("rank", "--target", "cmapss-sample:FD001", "--candidates", tmp_path, "--labelled-units", "4",
                       "--catalog", catalog.root)
    assert code == 2 and f"candidate {tmp_path}: no config.yaml" in err
    (tmp_path / "config.yaml").write_text("mode: pretrain\n")
    code, _, err = cli("rank", "--target", "cmapss-sample:FD001", "--candidates", runs["trained"], tmp_path,
                       "--labelled-units", "4", "--catalog", catalog.root)
    assert code == 2 and f"candidate {tmp_path}: no encoder.safetensors" in err and "candidates:" not in err
    code, _, err = cli("rank", "--target", "cmapss-sample:FD009", "--candidates", runs["trained"],
                       "--labelled-units", "4", "--catalog", catalog.root)
    assert code == 2 and "FD009" in err, err


@pytest.mark.slow
def test_a_classifier_run_is_ranked_by_leep_too(tmp_path, cli):
    """Fault classifiers trained on the vendored fan-end slice at 0 hp, ranked for 3 hp."""
    import yaml

    from .conftest import write_fan_end

    catalog = tmp_path / "catalog"
    code, _, err = cli("ingest", "waveforms", write_fan_end(tmp_path / "lab"), "--name", "lab", "--catalog", catalog,
                       "--pattern", "{label}_{load}hp_*.npy", "--sample-rate", "12000", "--quiet")
    assert code == 0, err
    config = tmp_path / "fault.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"dataset": "lab", "spec": {"kind": "waveforms", "length": 1024, "stride": 256, "normalize": "window",
                                            "label": "label", "domain": "load"},
                 "source": {"domains": [0], "split": "all"}, "target": {"domains": [3], "split": "all"},
                 "test": {"split": "all", "last_only": False}},
        "encoder": {"name": "cnn_small"}, "task": {"name": "fault_diagnosis"}, "adaptation": {"name": "source_only"},
        "optim": {"batch_size": 16, "lr": 0.003}, "tracking": {"mlflow": False}}))
    for name, extra in (("trained", ["epochs=4"]), ("barely", ["epochs=1", "optim.max_steps_per_epoch=1"])):
        code, _, err = cli("transfer", "--config", config, "--catalog", catalog, "--run-dir", tmp_path / name,
                           "--quiet", *extra)
        assert code == 0, err
    out = tmp_path / "ranking.json"
    code, stdout, err = cli("rank", "--target", "lab:3", "--candidates", tmp_path / "barely", tmp_path / "trained",
                            "--labelled-units", "6", "--catalog", catalog, "--json", out, "--quiet")
    assert code == 0, err
    assert "leep" in stdout
    by_name = {c["run_dir"]: c["scores"] for c in json.loads(out.read_text())["candidates"]}
    trained, barely = by_name[str(tmp_path / "trained")], by_name[str(tmp_path / "barely")]
    assert np.log(1 / 3) - 0.05 < barely["leep"] < np.log(1 / 3) + 0.05  # uniform guesses score about log 1/3
    assert barely["leep"] + 0.1 < trained["leep"] < 0
