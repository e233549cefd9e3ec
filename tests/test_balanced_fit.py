"""Tests of the fit behind ltml.BalancedSampler where its answer is known in closed form, of what
its warnings report (against a converged fit), and of its numerical kernels against scipy.

Every fit here is small (at most VOC-LT's 1142 images), so the file runs in seconds.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import numpy as np
import pytest
from scipy.optimize import brentq, linprog
from scipy.special import logsumexp

from ltml import BalancedSampler, fit_balanced_weights
from ltml.samplers._balance import _capped, _dual, _Problem, _problem, _separated

SEARCH = 1.01  # the documented precision of the smallest-band search
FOUND = r"the ratio found, ([0-9.]+), may be up to ([0-9.]+) times the smallest the data allow"


def _fit(labels: object, **kwargs: Any) -> tuple[BalancedSampler, list[str]]:
    """The sampler and every warning its construction gave, in order."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = BalancedSampler(labels, **kwargs)
    return sampler, [str(w.message) for w in caught]


def _one_rare(n: int = 10) -> np.ndarray:
    """n images of class 0, then one image of class 1."""
    labels = np.zeros((n + 1, 2), np.int64)
    labels[:n, 0] = 1
    labels[n, 1] = 1
    return labels


def _corner(n: int = 5) -> np.ndarray:
    """Image 0 has classes 0 and 1, the n others class 0 only."""
    labels = np.zeros((n + 1, 2), np.int64)
    labels[:, 0] = 1
    labels[0, 1] = 1
    return labels


def _random_labels(seed: int, n: int = 14, c: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < rng.uniform(0.1, 0.7, c)).astype(np.int64)
    labels[np.arange(c), np.arange(c)] = 1  # every class has a positive
    return labels


def _uniform_band(labels: np.ndarray) -> float:
    """The band of uniform sampling (power 0), by its definition."""
    n = (labels == 1).sum(0)
    excess = n / n.sum() * len(n)
    return float(max(excess.max(), 1 / excess.min()))


# ------------------------------------------------------------------ closed forms: the cap, a corner


@pytest.mark.parametrize("max_weight", [1.5, 3.0, 5.366])
def test_a_cap_on_the_rare_image_sets_the_smallest_band(max_weight: float) -> None:
    # Class 1 has one image among N = 11, all with one label: its share is its probability,
    # at most m / N, so the smallest band is r* = N / (2 m) (target 1/2). In a band r >= r*,
    # maximum entropy gives the rare image 1 / (2 r) and spreads the rest evenly.
    labels = _one_rare()
    smallest = 11 / (2 * max_weight)
    sampler, caught = _fit(labels, max_weight=max_weight)
    assert caught == []
    assert smallest * (1 - 1e-6) <= sampler.ratio <= smallest * SEARCH
    p = sampler.weights.numpy()
    assert p[10] == pytest.approx(1 / (2 * sampler.ratio), rel=1e-6)
    assert p[10] <= max_weight / 11 * (1 + 1e-12)
    np.testing.assert_allclose(p[:10], (1 - p[10]) / 10, rtol=1e-12)
    # A band out of reach is proven so (one warning), and the smallest one found instead.
    for asked in (1.0, smallest / SEARCH):
        again, caught = _fit(labels, max_weight=max_weight, max_ratio=asked)
        assert len(caught) == 1
        start = f"BalancedSampler: max_ratio={asked:g} is out of reach for these labels; using "
        assert caught[0].startswith(start)
        assert float(caught[0].rsplit(", ", 1)[1]) == pytest.approx(again.ratio, rel=1e-3)
        assert smallest * (1 - 1e-6) <= again.ratio <= smallest * SEARCH
    # Bands just within reach are met, on their edge (to the duality gap tol allows). Once a
    # step puts the rare image at the cap, the dual has no curvature there: the fit must not
    # creep along it (it did, and then reported these bands "not met").
    for asked in smallest * np.array([1.001, 1.005, 1.02, 1.05]):
        met, caught = _fit(labels, max_weight=max_weight, max_ratio=asked)
        assert caught == []
        assert asked * (1 - 1e-4) <= met.ratio <= asked * (1 + 1e-6)


def test_a_cap_of_one_leaves_uniform_sampling(voc_lt: tuple[np.ndarray, dict]) -> None:
    # max_weight = 1: no image above uniform, so uniform it is, and its band is the smallest.
    for labels in (_one_rare(), voc_lt[0]):
        sampler, caught = _fit(labels, max_weight=1.0)
        assert caught == []
        np.testing.assert_allclose(sampler.weights.numpy(), 1 / len(labels), rtol=1e-12)
        assert sampler.ratio == pytest.approx(_uniform_band(labels), rel=1e-12)
        tighter, caught = _fit(labels, max_weight=1.0, max_ratio=1.0)
        assert len(caught) == 1
        start = "BalancedSampler: max_ratio=1 is out of reach for these labels; using the smallest "
        assert caught[0].startswith(start + "ratio found, ")
        assert float(caught[0].rsplit(", ", 1)[1]) == pytest.approx(sampler.ratio, rel=1e-3)
        assert tighter.ratio == sampler.ratio


def test_exact_balance_at_a_corner_of_the_simplex() -> None:
    # Class 1 is only on image 0, which also has class 0, as the 5 others: s_1 = p_0 / (1 + p_0)
    # reaches its target 1/2 only at p_0 = 1. In a band r, the lower bound of class 1 binds:
    # p_0 = 1 / (2 r - 1), the rest spread evenly (maximum entropy).
    labels = _corner()
    sampler, caught = _fit(labels)
    assert caught == []
    assert sampler.ratio <= 1 + 1e-5  # r = 1 is reachable, if only at a point
    assert sampler.weights[0].item() >= 1 - 1e-5
    for ratio in (1.001, 1.2, 1.5):
        fitted, caught = _fit(labels, max_ratio=ratio)
        assert caught == []
        p = fitted.weights.numpy()
        assert p[0] == pytest.approx(1 / (2 * ratio - 1), rel=1e-6)
        np.testing.assert_allclose(p[1:], (1 - p[0]) / 5, rtol=1e-9)


# ------------------------------------------------------------------------- what the warnings report


@pytest.mark.parametrize(
    ("seed", "kwargs"),
    [
        (0, {"max_iter": 3}),
        (4, {"max_iter": 3}),
        (0, {"max_iter": 1, "max_ratio": 1.2}),
        (None, {"max_iter": 1, "max_ratio": 1.5}),  # VOC-LT
    ],
)
def test_unconverged_fits_report_the_ratio_and_a_true_bound(
    voc_lt: tuple[np.ndarray, dict], seed: int | None, kwargs: dict
) -> None:
    labels = voc_lt[0] if seed is None else _random_labels(seed)
    reference = BalancedSampler(labels).ratio  # converged: the smallest band is at most this
    sampler, caught = _fit(labels, **kwargs)
    iters = kwargs["max_iter"]
    first = f"BalancedSampler: some fits did not converge within max_iter={iters} Newton steps; "
    assert caught[0].startswith(first)
    found = re.search(FOUND, caught[0])
    assert found is not None
    # The ratio it names is the one used, and the factor bounds how far that is from the best.
    assert float(found[1]) == pytest.approx(sampler.ratio, rel=1e-3)
    assert float(found[2]) >= sampler.ratio / reference * (1 - 5e-3)
    if "max_ratio" in kwargs:  # not proven out of reach, only not met
        assert caught[1:] == [
            f"BalancedSampler: max_ratio={kwargs['max_ratio']:g} was not met; using the smallest "
            f"ratio found, {found[1]}"
        ]
    else:
        assert len(caught) == 1


def test_a_tolerance_never_met_runs_every_fit_to_max_iter() -> None:
    # Each fit then stops after its max_iter Newton steps: 100 by default.
    for fit in (BalancedSampler, fit_balanced_weights):
        name = fit.__name__
        with pytest.warns(
            UserWarning, match=rf"^{name}: some fits did not converge within max_iter=100 "
        ):
            fit(_random_labels(0), tol=1e-300)


def test_a_band_just_out_of_reach_warns_once(voc_lt: tuple[np.ndarray, dict]) -> None:
    # Proven out of reach, with every other band of the search settled: nothing else to say.
    sampler, caught = _fit(voc_lt[0], max_ratio=1.99)
    assert len(caught) == 1
    start = "BalancedSampler: max_ratio=1.99 is out of reach for these labels; using the smallest "
    assert caught[0].startswith(start + "ratio found, ")
    assert float(caught[0].rsplit(", ", 1)[1]) == pytest.approx(sampler.ratio, rel=1e-3)
    assert 2.0 <= sampler.ratio <= 2.0 * SEARCH


def test_warnings_name_the_function_called() -> None:
    labels = np.column_stack([_random_labels(5), np.zeros(14, np.int64)])  # class 4: no positive
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_balanced_weights(labels, max_ratio=1.2, max_weight=3.0)
    messages = [str(w.message) for w in caught]
    assert messages[0] == (
        "fit_balanced_weights: 1 of 5 classes have no known positive image and are never drawn: [4]"
    )
    assert messages[1].startswith(
        "fit_balanced_weights: max_ratio=1.2 is out of reach for these labels; using the "
    )
    assert len(messages) == 2


@pytest.mark.parametrize(("empty", "tail"), [(10, ""), (11, " ...")])
def test_classes_without_a_positive_are_listed_up_to_ten(empty: int, tail: str) -> None:
    labels = np.zeros((2, empty + 2), np.int64)
    labels[0, 0] = labels[1, -1] = 1
    _, caught = _fit(labels)
    assert caught == [
        f"BalancedSampler: {empty} of {empty + 2} classes have no known positive image and are "
        f"never drawn: {list(range(1, 11))}{tail}"
    ]


# ---------------------------------------------------------------------------- defaults, tiny input


def test_defaults_and_the_smallest_inputs() -> None:
    labels = _random_labels(2)
    assert list(BalancedSampler(labels)) == list(BalancedSampler(labels, seed=0))  # seed 0
    # num_classes reaches the constructor from class lists: class 2 is there, without positives.
    with pytest.warns(UserWarning, match=r"^BalancedSampler: 1 of 3 classes .* drawn: \[2\]$"):
        sampler = BalancedSampler.from_class_lists([[0], [1], [0, 1]], num_classes=3)
    assert sampler.expected_shares.tolist() == pytest.approx([0.5, 0.5, 0.0])
    # One image, one class: nothing to balance.
    one, caught = _fit(np.array([[1]]))
    assert caught == []
    assert (one.weights.tolist(), one.ratio, list(one)) == ([1.0], 1.0, [0])


# -------------------------------------------------------------------------- kernels against scipy


def _simplex(n: int, max_weight: float | None) -> _Problem:
    """The problem of n images with one class each: only its cap matters to the kernels below."""
    problem, _ = _problem(np.ones(n, np.int64), np.arange(n), 0.0, max_weight)
    return problem


def test_separation_is_a_positive_minimum_over_the_capped_simplex() -> None:
    # _separated(g) claims sum_i p_i g_i > 0 for every p with sum 1 and 0 <= p_i <= cap;
    # linear programming finds that minimum.
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(2, 9))
        max_weight = float(rng.choice([1.0, 1.3, 2.5, n / 2, n, 2 * n]))
        g = rng.normal(rng.uniform(-1.0, 1.5), 1.0, n)
        problem = _simplex(n, max_weight)
        cap = min(max_weight / n, 1.0)
        lowest = linprog(g, A_eq=np.ones((1, n)), b_eq=[1.0], bounds=[(0, cap)] * n).fun
        if abs(lowest) > 1e-9:
            assert _separated(problem, g) == (lowest > 0), (g, max_weight)
            checked += 1
    assert checked > 250


@pytest.mark.parametrize("offset", [0.0, -800.0, 800.0])
@pytest.mark.parametrize("max_weight", [None, 1.0, 1.7, 4.0])
def test_capped_probabilities_against_a_root_finder(
    offset: float, max_weight: float | None
) -> None:
    # p_i = min(cap, exp(z_i - s)) summing to 1; s is a root of a monotone sum (brentq). Adding a
    # constant to z only moves s.
    rng = np.random.default_rng(1)
    n = 12
    z = rng.normal(0.0, 3.0, n)
    cap = 1.0 if max_weight is None else min(max_weight / n, 1.0)
    problem = _simplex(n, max_weight)

    def excess(s: float) -> float:
        return float(np.minimum(cap, np.exp(z - s)).sum() - 1)

    shift = brentq(excess, -50.0, 50.0, xtol=1e-15)
    expected = np.minimum(cap, np.exp(z - shift))
    p = _capped(z + offset, problem.log_cap)
    assert p.sum() == pytest.approx(1.0, abs=1e-13)
    assert p.max() <= cap * (1 + 1e-12)
    np.testing.assert_allclose(p, expected, rtol=1e-9)


def test_dual_value_is_the_log_partition_even_when_probabilities_underflow() -> None:
    # Without a cap, min_p KL(p || u) + sum_i p_i g_i = log N - logsumexp(-g). Multipliers in the
    # thousands drive some p_i to exactly 0, whose 0 log 0 counts as 0.
    labels = _random_labels(3)
    counts = (labels == 1).sum(0)
    image_ids = np.concatenate([np.flatnonzero(labels[:, k] == 1) for k in range(labels.shape[1])])
    problem, drawable = _problem(counts, image_ids, 0.0, None)
    lam = np.zeros(2 * counts.size)
    lam[0], lam[5] = 3000.0, 1000.0
    state = _dual(problem, lam, 1.1)
    assert (state.p == 0).any()
    assert np.isfinite(state.value)
    expected = math.log(drawable.size) - float(logsumexp(-state.scores))
    assert state.value == pytest.approx(expected, rel=1e-12, abs=1e-9)
