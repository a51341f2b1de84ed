"""Decompositions are exact (shares sum to the change) and independent of the factors' order."""

from __future__ import annotations

import itertools
import random

import pytest

from services.diagnosis.engine.decomposition import (
    decompose_gmv,
    decompose_product,
    funnel_factors,
    mix_rate,
)
from services.diagnosis.engine.errors import InputError


def test_gmv_decomposition_is_exact() -> None:
    d = decompose_gmv(
        {"visitors": 10_000, "buyers": 250, "gmv": 15_000},
        {"visitors": 9_000, "buyers": 270, "gmv": 17_010},
    )
    assert d.method == "lmdi"
    assert sum(d.contributions.values()) == pytest.approx(17_010 - 15_000)
    assert sum(d.shares().values()) == pytest.approx(1)
    assert d.contributions["visitors"] < 0 < d.contributions["cvr"]


@pytest.mark.parametrize("seed", range(20))
def test_order_free_and_exact_random(seed: int) -> None:
    rng = random.Random(seed)
    names = ["a", "b", "c", "d"]
    b = {n: rng.uniform(0.1, 10) for n in names}
    a = {n: rng.uniform(0.1, 10) for n in names}
    ref = decompose_product(b, a, names)
    assert sum(ref.contributions.values()) == pytest.approx(ref.after - ref.before)
    for perm in itertools.permutations(names):
        d = decompose_product(b, a, list(perm))
        for n in names:
            assert d.contributions[n] == pytest.approx(ref.contributions[n])


def test_zero_factor_falls_back_to_exact_shapley() -> None:
    d = decompose_product({"x": 0.0, "y": 2.0}, {"x": 3.0, "y": 4.0})
    assert d.method == "shapley"
    assert sum(d.contributions.values()) == pytest.approx(12.0)
    assert d.contributions == pytest.approx({"x": 9.0, "y": 3.0})
    with pytest.raises(InputError):
        decompose_product({"x": 1.0}, {"y": 1.0})


def test_funnel_factors_multiply_to_gmv() -> None:
    f = funnel_factors(100_000, 2_000, 1_800, 45, 2_700.0)
    prod = 1.0
    for v in f.values():
        prod *= v
    assert prod == pytest.approx(2_700.0)


def test_mix_versus_rate() -> None:
    # traffic moved from search (cvr 4%) to social (1%), each channel's rate unchanged: pure mix
    before = {"search": (40.0, 1000.0), "social": (10.0, 1000.0)}
    after = {"search": (20.0, 500.0), "social": (15.0, 1500.0)}
    m = mix_rate(before, after)
    assert m.after - m.before == pytest.approx(m.mix + m.rate)
    assert m.rate == pytest.approx(0) and m.mix_share == pytest.approx(1)
    # same traffic, search converts worse: pure rate
    r = mix_rate(before, {"search": (20.0, 1000.0), "social": (10.0, 1000.0)})
    assert r.mix == pytest.approx(0) and r.rate == pytest.approx(-0.01)
    with pytest.raises(InputError):
        mix_rate({"a": (0.0, 0.0)}, {"a": (1.0, 1.0)})
