"""Warm-started BO across tasks: related sources are used with their learned correlation, sources
that order the target's observations wrongly are left out, proposals stay in the box."""

from __future__ import annotations

import numpy as np

from transferline.process.warm_start import SourceTask, propose, ranking_accuracy

BOUNDS = np.array([[0.0, 0.0], [1.0, 1.0]])


def bowl(center, scale=1.0, offset=0.0):
    return lambda X: offset - scale * np.sum((np.asarray(X) - center) ** 2, axis=1)


def design(n, seed):
    return np.random.default_rng(seed).uniform(0, 1, (n, 2))


def test_related_sources_are_kept_and_anticorrelated_ones_left_out():
    target = bowl([0.3, 0.6])
    related = [SourceTask(f"plant-{i}", X, bowl([0.3 + 0.05 * i, 0.55], scale=3.0 + i, offset=10 * i)(X))
               for i, X in enumerate([design(15, 1), design(15, 2)])]
    opposite = SourceTask("mirrored", design(15, 3), -bowl([0.3, 0.6])(design(15, 3)))
    X = design(4, 9)
    y = target(X)
    assert ranking_accuracy(related[0], X, y, BOUNDS) > 0.8 and ranking_accuracy(opposite, X, y, BOUNDS) < 0.2
    out = propose(X, y, BOUNDS, sources=[*related, opposite], seed=0)
    assert out["model"] == "multi-task"
    assert out["weights"]["mirrored"]["kept"] is False and out["weights"]["mirrored"]["correlation"] is None
    for name in ("plant-0", "plant-1"):
        w = out["weights"][name]
        assert w["kept"] and w["ranking"] > 0.8 and 0 < w["correlation"] <= 1
    x = out["next"][0]
    assert ((x >= 0) & (x <= 1)).all()
    # the warm model points near the shared optimum at once; a cold start from 4 points need not
    assert np.linalg.norm(x - [0.3, 0.6]) < 0.25


def test_without_sources_or_with_all_left_out_it_is_a_cold_start():
    X = design(4, 9)
    y = bowl([0.3, 0.6])(X)
    cold = propose(X, y, BOUNDS, seed=0, q=2)
    assert cold["model"] == "single-task" and cold["next"].shape == (2, 2) and cold["weights"] == {}
    opposite = SourceTask("mirrored", design(15, 3), -bowl([0.3, 0.6])(design(15, 3)))
    guarded = propose(X, y, BOUNDS, sources=[opposite], seed=0)
    assert guarded["model"] == "single-task" and guarded["weights"]["mirrored"]["kept"] is False
