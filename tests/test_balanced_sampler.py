"""Tests for ltml.BalancedSampler / fit_balanced_weights: the fit against independent solvers,
the draws against the fit (statistical bounds), determinism, shards, the real-data goal, errors.

Statistical checks use fixed seeds, so they are deterministic; a correct sampler would fail them
with probability below about 1e-4 for a fresh seed (deviations below 5 standard deviations,
Bonferroni over at most 20 classes).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize
from torch.utils.data import WeightedRandomSampler

from ltml import BalancedSampler, ClassAwareSampler, fit_balanced_weights

Z_MAX = 5.0  # largest deviation in standard deviations
SEARCH = 1.01  # the documented precision of the smallest-band search


def _shares(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Literal transcription: s_k = sum_i p_i y_ik / sum_i p_i |y_i| (known positives only)."""
    positive = (labels == 1).astype(np.float64)
    drawn = p @ positive
    return drawn / drawn.sum()


def _targets(labels: np.ndarray, power: float) -> np.ndarray:
    n = (labels == 1).sum(0).astype(np.float64)
    t = n**power
    return t / t.sum()


def _band(p: np.ndarray, labels: np.ndarray, power: float = 0.0) -> float:
    excess = _shares(p, labels) / _targets(labels, power)
    return float(max(excess.max(), 1 / excess.min()))


def _random_labels(seed: int, n: int = 14, c: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < rng.uniform(0.1, 0.7, c)).astype(np.int64)
    labels[np.arange(c), np.arange(c)] = 1  # every class has a positive
    return labels


# -------------------------------------------------------------- the fit against independent solvers


def test_two_classes_by_hand() -> None:
    # Classes 0 (images 0-3) and 1 (images 3, 4); image 5 has none. Equal shares need
    # p_4 = 3 p_0; maximum entropy with p_0 = p_1 = p_2 = a, p_3 = b: a * 3a = b^2, so
    # a = 1 / (6 + sqrt 3).
    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 0]])
    a = 1 / (6 + math.sqrt(3))
    expected = [a, a, a, math.sqrt(3) * a, 3 * a, 0.0]
    np.testing.assert_allclose(fit_balanced_weights(labels).numpy(), expected, rtol=1e-6)


def _reachable(labels: np.ndarray, ratio: float, max_weight: float | None) -> bool:
    """Whether some p meets the band, by linear programming on q = p / sum_i p_i |y_i|."""
    y = (labels[(labels == 1).any(1)] == 1).astype(np.float64)
    n = y.shape[0]
    t = _targets(y, 0.0)
    rows, bounds = [y.T, -y.T], [ratio * t, -t / ratio]
    if max_weight is not None:  # q_i <= m / n * sum_j q_j
        rows.append(np.eye(n) - max_weight / n)
        bounds.append(np.zeros(n))
    result = linprog(
        np.zeros(n),
        A_ub=np.vstack(rows),
        b_ub=np.concatenate(bounds),
        A_eq=y.sum(1)[None],
        b_eq=[1.0],
        method="highs",
    )
    return bool(result.status == 0)


@pytest.mark.parametrize("max_weight", [None, 2.0])
@pytest.mark.parametrize("seed", range(6))
def test_smallest_band_matches_linear_programming(seed: int, max_weight: float | None) -> None:
    labels = _random_labels(seed)
    low, high = 1.0, 100.0
    if _reachable(labels, low, max_weight):
        high = low
    while high / low > 1 + 1e-6:
        middle = math.sqrt(low * high)
        low, high = (low, middle) if _reachable(labels, middle, max_weight) else (middle, high)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no convergence warning
        sampler = BalancedSampler(labels, max_weight=max_weight)
    assert high * (1 - 1e-5) <= sampler.ratio <= high * SEARCH * (1 + 1e-5)
    assert sampler.ratio == pytest.approx(_band(sampler.weights.numpy(), labels), rel=1e-12)


@pytest.mark.parametrize(("seed", "power", "widen"), [(0, 0.0, 1.3), (3, 0.5, 1.1), (5, 0.0, 2)])
def test_maximum_entropy_matches_a_generic_solver(seed: int, power: float, widen: float) -> None:
    labels = _random_labels(seed, n=10, c=3)
    ratio = BalancedSampler(labels, power=power).ratio * widen
    p = fit_balanced_weights(labels, power=power, max_ratio=ratio, max_weight=3.0).numpy()
    # SLSQP on the primal as written: min KL(p || u) over the band, the cap and the simplex of
    # the images with a positive (the others get 0).
    drawable = (labels == 1).any(1)
    assert np.all(p[~drawable] == 0)
    y, t = (labels[drawable] == 1).astype(np.float64), _targets(labels, power)
    n = y.shape[0]

    def band(q: np.ndarray) -> np.ndarray:
        drawn = q @ y
        return np.concatenate([ratio * t * drawn.sum() - drawn, drawn - t * drawn.sum() / ratio])

    reference = minimize(
        lambda q: float(q @ np.log(q * n)),
        np.full(n, 1 / n),
        jac=lambda q: np.log(q * n) + 1,
        bounds=[(1e-12, 3.0 / n)] * n,
        constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1}, {"type": "ineq", "fun": band}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert reference.success
    np.testing.assert_allclose(p[drawable], reference.x, atol=1e-6)


def test_weights_are_products_of_class_factors() -> None:
    # Below the cap, maximum entropy makes log p_i linear in (y_i, |y_i|): one factor per class.
    labels = _random_labels(1, n=40, c=5)
    labels = labels[(labels == 1).any(1)]
    p = fit_balanced_weights(labels, max_ratio=1.2).numpy()
    y = (labels == 1).astype(np.float64)
    design = np.column_stack([y, y.sum(1), np.ones(len(y))])
    coef, *_ = np.linalg.lstsq(design, np.log(p), rcond=None)
    np.testing.assert_allclose(design @ coef, np.log(p), atol=1e-8)


def test_shares_and_band_are_what_the_weights_give(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    sampler = BalancedSampler(labels, max_ratio=3.0)
    p = sampler.weights.numpy()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(sampler.expected_shares.numpy(), _shares(p, labels), rtol=1e-10)
    assert sampler.ratio == pytest.approx(3.0, rel=1e-6)  # a band that binds is met, not beaten
    np.testing.assert_array_equal(sampler.counts, (labels == 1).sum(0))


# ----------------------------------------------------------------------- interpolation and the cap


def test_power_one_is_uniform_over_the_images_with_a_positive() -> None:
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 1], [1, 0, -1], [0, 0, 1]])
    p = fit_balanced_weights(labels, power=1.0).numpy()
    np.testing.assert_allclose(p, [0.2, 0.2, 0.0, 0.2, 0.2, 0.2], rtol=1e-12)


def test_a_band_uniform_sampling_meets_gives_uniform(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    p = fit_balanced_weights(labels, max_ratio=1e6).numpy()
    np.testing.assert_allclose(p, 1 / len(labels), rtol=1e-12)


@pytest.mark.parametrize("power", [0.0, 0.5])
def test_power_sets_the_target_shares(voc_lt: tuple[np.ndarray, dict], power: float) -> None:
    labels = voc_lt[0]
    sampler = BalancedSampler(labels, power=power, max_ratio=4.0)
    excess = sampler.expected_shares.numpy() / _targets(labels, power)
    assert excess.min() >= 1 / 4 * (1 - 1e-6)
    assert excess.max() <= 4 * (1 + 1e-6)


def test_looser_bands_are_closer_to_uniform(nih_cxr14: np.ndarray) -> None:
    labels = nih_cxr14
    kl = []
    for ratio in (1.0, 1.2, 1.5, 2.0):
        p = fit_balanced_weights(labels, max_ratio=ratio).numpy()
        p = p[p > 0]
        kl.append(float(p @ np.log(p * (labels == 1).any(1).sum())))
    assert kl == sorted(kl, reverse=True)
    assert kl[-1] > 0


@pytest.mark.parametrize("max_weight", [1.0, 2.0, 20.0])
def test_cap_is_respected(voc_lt: tuple[np.ndarray, dict], max_weight: float) -> None:
    labels = voc_lt[0]
    sampler = BalancedSampler(labels, max_weight=max_weight)
    drawable = (labels == 1).any(1).sum()
    assert sampler.weights.max().item() <= max_weight / drawable * (1 + 1e-12)
    if max_weight == 1.0:  # no image above uniform: uniform itself
        np.testing.assert_allclose(sampler.weights.numpy(), 1 / drawable, rtol=1e-12)
    else:  # the cap binds (uncapped, some image takes 55 times its uniform probability)
        assert sampler.weights.max().item() == pytest.approx(max_weight / drawable, rel=1e-12)
    assert sampler.ratio == pytest.approx(_band(sampler.weights.numpy(), labels), rel=1e-12)


def test_tight_cap_widens_the_band(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    ratios = [BalancedSampler(labels, max_weight=m).ratio for m in (None, 20.0, 5.0)]
    assert ratios == sorted(ratios)


# -------------------------------------------------------------------------- unknown labels, forms


def test_unknown_labels_never_count_as_positive() -> None:
    labels = np.array([[1, -1, 0], [-1, 1, 0], [0, 0, 1], [-1, -1, -1], [1, 1, 0], [0, 1, 1]])
    p = fit_balanced_weights(labels).numpy()
    assert p[3] == 0.0
    np.testing.assert_array_equal(p, fit_balanced_weights(np.where(labels == 1, 1, 0)).numpy())
    order = list(BalancedSampler(labels, num_draws=500))
    assert 3 not in order


def test_label_forms_give_the_same_fit(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    dense = BalancedSampler(labels, max_ratio=3.0)
    lists = [np.flatnonzero(row == 1).tolist() for row in labels]
    sparse = BalancedSampler.from_class_lists(lists, num_classes=20, max_ratio=3.0)
    tensor = BalancedSampler(torch.from_numpy(labels).to(torch.int8), max_ratio=3.0)
    np.testing.assert_array_equal(dense.weights.numpy(), sparse.weights.numpy())
    np.testing.assert_array_equal(dense.weights.numpy(), tensor.weights.numpy())
    assert list(dense) == list(sparse)


def test_weights_feed_weighted_random_sampler(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    p = fit_balanced_weights(labels, max_ratio=3.0)
    assert p.dtype == torch.float64
    assert p.shape == (len(labels),)
    draws = list(WeightedRandomSampler(p, 50_000, generator=torch.Generator().manual_seed(0)))
    counts = np.bincount(draws, minlength=len(labels))
    expected = 50_000 * p.numpy()
    assert np.all(np.abs(counts - expected) <= Z_MAX * np.sqrt(expected) + 1)


def test_empty_class_warns_and_has_no_share() -> None:
    labels = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1]])
    with pytest.warns(UserWarning, match=r"BalancedSampler: 1 of 3 classes have no known"):
        sampler = BalancedSampler(labels)
    assert sampler.expected_shares.tolist() == pytest.approx([0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match=r"`labels`: 1 of 3 classes have no known positive"):
        fit_balanced_weights(labels, empty_classes="error")


# --------------------------------------------------------------------------------- the draws


def test_realised_shares_match_the_expected_ones(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    n = 200_000
    sampler = BalancedSampler(labels, n, max_ratio=3.0, seed=4)
    order = np.fromiter(sampler, np.int64, n)
    y = (labels == 1).astype(np.float64)
    s = sampler.expected_shares.numpy()
    realised = y[order].sum(0) / y[order].sum()
    # Delta method for the ratio of means: sd(s_hat_k) = sd_p(y_k - s_k |y|) / (sqrt(n) E_p|y|).
    p = sampler.weights.numpy()
    centred = y - s * y.sum(1, keepdims=True)
    sd = np.sqrt(p @ centred**2 - (p @ centred) ** 2) / (math.sqrt(n) * (p @ y.sum(1)))
    assert np.all(np.abs(realised - s) <= Z_MAX * sd)


def test_draws_follow_the_weights_and_skip_zero_weights() -> None:
    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 0]])
    n = 100_000
    sampler = BalancedSampler(labels, n, seed=1)
    counts = np.bincount(list(sampler), minlength=6)
    expected = n * sampler.weights.numpy()
    assert counts[5] == 0
    sd = np.sqrt(expected * (1 - expected / n))
    assert np.all(np.abs(counts - expected) <= Z_MAX * sd)


def test_order_is_a_function_of_seed_and_epoch(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 -- the global RNG must not matter
    first = BalancedSampler(labels, max_ratio=3.0, seed=7)
    first.set_epoch(3)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    order = list(first)
    assert torch.equal(torch.get_rng_state(), torch_state)  # and left untouched
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    again = BalancedSampler(labels, max_ratio=3.0, seed=7)
    again.set_epoch(3)
    assert list(again) == order
    assert list(again) == order  # iterating twice in one epoch repeats it
    again.set_epoch(4)
    assert list(again) != order
    other_seed = BalancedSampler(labels, max_ratio=3.0, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != order


@pytest.mark.parametrize(("num_draws", "replicas"), [(1142, 2), (1001, 3), (7, 4), (2, 5)])
def test_simulated_ranks_partition_the_epoch(
    voc_lt: tuple[np.ndarray, dict], num_draws: int, replicas: int
) -> None:
    labels = voc_lt[0]

    def order(**kw: int) -> list[int]:
        s = BalancedSampler(labels, num_draws, max_ratio=3.0, seed=11, **kw)
        s.set_epoch(2)
        return list(s)

    global_order = order(num_replicas=1, rank=0)
    assert len(global_order) == num_draws
    total = math.ceil(num_draws / replicas) * replicas
    padded = [global_order[i % num_draws] for i in range(total)]  # wrap, as DistributedSampler
    shards = [order(num_replicas=replicas, rank=r) for r in range(replicas)]
    assert {len(s) for s in shards} == {total // replicas}
    for r, shard in enumerate(shards):
        assert shard == padded[r::replicas]  # positions r, r + R, ...: disjoint, cover the epoch
        assert len(BalancedSampler(labels, num_draws, num_replicas=replicas, rank=r)) == len(shard)
    interleaved = [shards[p % replicas][p // replicas] for p in range(total)]
    assert interleaved[:num_draws] == global_order


def test_default_length_is_all_images() -> None:
    labels = np.array([[1, 0], [0, 1], [0, 0]])
    sampler = BalancedSampler(labels)
    assert (sampler.num_images, sampler.num_draws, sampler.total_size) == (3, 3, 3)
    assert sampler.num_draws_per_rank == len(sampler) == 3
    assert (sampler.num_replicas, sampler.rank, sampler.epoch) == (1, 0, 0)


# ------------------------------------------------------------------------------ the real-data goal


def test_nih_balanced_with_every_finding_drawable(nih_cxr14: np.ndarray) -> None:
    labels = nih_cxr14
    has_finding = (labels == 1).any(1)
    class_aware = ClassAwareSampler(labels, seed=0)
    # Class-aware sampling: the most frequent class gets 2.1 times its share of positive draws.
    assert _band(_class_aware_probabilities(labels), labels) > 2.0
    exact = BalancedSampler(labels, seed=0)
    assert exact.ratio == pytest.approx(1.0, abs=1e-5)  # exact balance is within reach
    sampler = BalancedSampler(labels, max_ratio=1.25, seed=0)
    assert sampler.expected_shares.max().item() * 14 <= 1.3
    p = sampler.weights.numpy()
    assert np.all(p[has_finding] > 0)
    assert np.all(p[~has_finding] == 0)
    distinct = len(set(sampler))
    assert distinct >= len(set(class_aware))  # 71.1 % against 70.2 % of the 51,759
    assert distinct > 0.7 * has_finding.sum()


def _class_aware_probabilities(labels: np.ndarray) -> np.ndarray:
    positive = labels == 1
    n = positive.sum(0)
    return positive @ (1 / len(n) / n)


# ---------------------------------------------------------------------------------- bad input


def test_out_of_reach_band_warns_and_uses_the_smallest(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    with pytest.warns(UserWarning, match=r"max_ratio=1.5 is out of reach .* found, 2\.0"):
        sampler = BalancedSampler(labels, max_ratio=1.5)
    assert 2.0 <= sampler.ratio <= 2.0 * SEARCH  # linear programming: 2 exactly


def test_unconverged_fits_warn(voc_lt: tuple[np.ndarray, dict]) -> None:
    with pytest.warns(UserWarning, match=r"did not converge within max_iter=1 Newton steps"):
        BalancedSampler(voc_lt[0], max_iter=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"power": 1.5}, ValueError, r"`power` must be a finite real number in \[0, 1\], got 1.5"),
        ({"power": "0"}, TypeError, r"`power` must be a real number, got str '0'"),
        ({"max_ratio": 0.5}, ValueError, r"`max_ratio` must be a finite real number >= 1, got"),
        ({"max_ratio": math.inf}, ValueError, r"`max_ratio` must be a finite real number >= 1"),
        ({"max_weight": 0.9}, ValueError, r"`max_weight` must be a finite real number >= 1, got"),
        ({"max_weight": [2.0]}, TypeError, r"`max_weight` must be a real number, got list"),
        ({"tol": 0.0}, ValueError, r"`tol` must be a finite real number in \(0, 1\], got 0"),
        ({"max_iter": 0}, ValueError, r"`max_iter` must be an integer >= 1, got 0"),
        ({"max_iter": 2.0}, TypeError, r"`max_iter` must be an integer, got float"),
        ({"num_classes": 3}, ValueError, r"`labels` must have 3 columns \(num_classes\)"),
        ({"empty_classes": "skip"}, ValueError, r"`empty_classes` must be one of 'warn', 'error'"),
    ],
)
def test_bad_fit_input(kwargs: dict, error: type, match: str) -> None:
    labels = np.array([[1, 0], [0, 1], [1, 1]])
    with pytest.raises(error, match=match):
        fit_balanced_weights(labels, **kwargs)
    with pytest.raises(error, match=match):
        BalancedSampler(labels, **kwargs)


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "match"),
    [
        ([[1, 0]], {}, TypeError, r"got list; .*from_class_lists"),
        (np.array([[0, 2]]), {}, ValueError, r"`labels` must contain only .*, got 2$"),
        (np.zeros((3, 2)), {}, ValueError, r"`labels` must contain at least one known positive"),
        (np.eye(2), {"num_draws": 0}, ValueError, r"`num_draws` must be an integer >= 1"),
        (np.eye(2), {"seed": -1}, ValueError, r"`seed` must be an integer >= 0, got -1"),
        (np.eye(2), {"num_replicas": 2, "rank": 2}, ValueError, r"`rank` must be an integer in"),
    ],
)
def test_bad_sampler_input(labels: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BalancedSampler(labels, **kwargs)


def test_bad_epoch_and_class_lists() -> None:
    sampler = BalancedSampler(np.eye(2))
    with pytest.raises(ValueError, match=r"`epoch` must be an integer >= 0, got -1"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match=r"`class_lists` lists class 0 twice for image 0"):
        BalancedSampler.from_class_lists([[0, 0], [1]])
