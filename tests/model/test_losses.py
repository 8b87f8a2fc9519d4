"""Each loss against a value computed by hand on a tiny input."""

from __future__ import annotations

import math

import pytest
import torch

from transferline.losses import coral, dann_schedule, info_nce, mk_mmd, mmd, nt_xent, reverse_gradient


def test_mmd_by_hand():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0]])
    # k(a, b) = exp(-(a - b)^2 / 1): Kxx mean = (1 + e^-1 + e^-1 + 1) / 4, Kyy = 1, Kxy mean = (e^-4 + e^-1) / 2
    expected = (2 + 2 * math.exp(-1)) / 4 + 1 - (math.exp(-4) + math.exp(-1))
    assert float(mmd(x, y, [1.0])) == pytest.approx(expected, rel=1e-6)
    # two kernels add
    two = mmd(x, y, [1.0, 2.0]) - mmd(x, y, [2.0])
    assert float(two) == pytest.approx(expected, rel=1e-6)


def test_mk_mmd_zero_for_same_sample_and_grows_with_shift():
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert float(mk_mmd(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(mk_mmd(x, x + 0.5)) < float(mk_mmd(x, x + 2.0))


def test_coral_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # cov = [[2, 0], [0, 0]]
    y = torch.tensor([[0.0, 0.0], [0.0, 2.0]])  # cov = [[0, 0], [0, 2]]
    # ||C_x - C_y||_F^2 = 4 + 4 = 8; / (4 * d^2) = 8 / 16
    assert float(coral(x, y)) == pytest.approx(0.5)


def test_nt_xent_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    # view 0 = [1,0]: sims to others (1: [0,1] → 0, 2: [1,0] positive → 1, 3: [0,1] → 0)
    row = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0)))
    assert float(nt_xent(z1, z2, temperature=t)) == pytest.approx(row, rel=1e-6)  # all four rows alike


def test_info_nce_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = 1.0
    row0 = -math.log(math.e / (math.e + math.e))  # q0·k0 = 1, q0·k1 = 1
    row1 = -math.log(1 / (1 + 1))  # q1·k0 = 0, q1·k1 = 0
    assert float(info_nce(q, k, temperature=t)) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    neg = torch.tensor([[0.0, 1.0]])
    row0n = -math.log(math.e / (2 * math.e + 1))
    row1n = -math.log(1 / (2 + math.e))
    assert float(info_nce(q, k, neg, temperature=t)) == pytest.approx((row0n + row1n) / 2, rel=1e-6)


def test_gradient_reversal_and_schedule():
    x = torch.ones(3, requires_grad=True)
    reverse_gradient(x, 0.5).sum().backward()
    assert x.grad.tolist() == [-0.5, -0.5, -0.5]
    assert dann_schedule(0.0) == 0.0 and dann_schedule(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
