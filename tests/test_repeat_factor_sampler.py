"""Tests for ltml.RepeatFactorSampler / repeat_factors: the factors against a literal transcription
of the LVIS rule, the repeats against the factors (exact bounds and a statistical one),
determinism, shards, label forms, errors.

The statistical check uses fixed seeds, so it is deterministic; a correct sampler would fail it
with probability below about 1e-4 for a fresh seed (deviations below 5 standard deviations,
Bonferroni over at most 1,142 images).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltml import RepeatFactorSampler, repeat_factors

Z_MAX = 5.0


def _literal_factors(labels: np.ndarray, t: float) -> list[float]:
    """Literal transcription of Gupta et al. (2019): f_c, r_c, then r(I) = max over I's classes."""
    n, c = labels.shape
    f = [sum(1 for i in range(n) if labels[i][k] == 1) / n for k in range(c)]
    r_class = [max(1.0, math.sqrt(t / f[k])) if f[k] > 0 else None for k in range(c)]
    factors = []
    for i in range(n):
        mine = [r_class[k] for k in range(c) if labels[i][k] == 1]
        factors.append(max(mine) if mine else 1.0)  # an image without a positive: kept once
    return factors


def _random_labels(seed: int, n: int = 40, c: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < rng.uniform(0.02, 0.6, c)).astype(np.int64)
    labels[rng.random((n, c)) < 0.1] = -1
    return labels


# ----------------------------------------------------------------------------------- the factors


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t", [0.001, 0.1, 0.3, 1.0])
def test_factors_match_the_literal_rule(seed: int, t: float) -> None:
    labels = _random_labels(seed)
    got = repeat_factors(labels, t)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _literal_factors(labels, t), rtol=1e-15)


def test_factors_on_voc_lt(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    np.testing.assert_allclose(
        repeat_factors(labels, 0.05).numpy(), _literal_factors(labels, 0.05), rtol=1e-15
    )


def test_unknown_never_counts_as_positive() -> None:
    # Class 1 has one known positive (image 0); the -1 of image 1 must neither count in f_1 nor
    # give image 1 class 1's factor.
    labels = np.array([[1, 1], [1, -1], [1, 0], [1, 0]])
    assert repeat_factors(labels, 1.0).tolist() == [2.0, 1.0, 1.0, 1.0]


def test_label_forms_give_the_same_factors(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    lists = [np.flatnonzero(row == 1).tolist() for row in labels]
    dense = RepeatFactorSampler(labels, 0.05)
    sparse = RepeatFactorSampler.from_class_lists(
        lists, num_classes=labels.shape[1], threshold=0.05
    )
    assert torch.equal(dense.factors, sparse.factors)
    assert torch.equal(dense.factors, RepeatFactorSampler(torch.from_numpy(labels), 0.05).factors)
    dense.set_epoch(1)
    sparse.set_epoch(1)
    assert list(dense) == list(sparse)


# ----------------------------------------------------------------------------------- the repeats


def test_each_epoch_rounds_every_factor_down_or_up(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    sampler = RepeatFactorSampler(labels, 0.1, seed=3)
    r = sampler.factors.numpy()
    assert r.max() > 2  # some image is repeated more than twice
    for epoch in range(5):
        sampler.set_epoch(epoch)
        counts = np.bincount(list(sampler), minlength=labels.shape[0])
        assert len(sampler) == sampler.num_draws == counts.sum()
        assert (counts >= np.floor(r)).all()
        assert (counts <= np.ceil(r)).all()
        whole = r == np.floor(r)
        assert (counts[whole] == r[whole]).all()  # whole factors: exactly, every epoch


def test_expected_repeats_are_the_factors(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    sampler = RepeatFactorSampler(labels, 0.1, seed=5)
    r = sampler.factors.numpy()
    epochs = 400
    total = np.zeros(labels.shape[0])
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        total += np.bincount(list(sampler), minlength=labels.shape[0])
    frac = r - np.floor(r)
    sd = np.sqrt(frac * (1 - frac) / epochs)  # the mean of Bernoulli(frac) extras
    deviation = np.abs(total / epochs - r)
    random_part = sd > 0
    assert (deviation[~random_part] == 0).all()
    assert (deviation[random_part] <= Z_MAX * sd[random_part]).all()


def test_order_is_shuffled_and_a_function_of_seed_and_epoch(
    voc_lt: tuple[np.ndarray, dict],
) -> None:
    labels = voc_lt[0]
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 -- the global RNG must not matter
    first = RepeatFactorSampler(labels, 0.1, seed=7)
    first.set_epoch(3)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    order = list(first)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()  # noqa: NPY002
    assert order != sorted(order)  # shuffled, not image-major
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    again = RepeatFactorSampler(labels, 0.1, seed=7)
    again.set_epoch(3)
    assert list(again) == order
    assert list(again) == order  # iterating twice in one epoch repeats it
    again.set_epoch(4)
    assert list(again) != order
    other_seed = RepeatFactorSampler(labels, 0.1, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != order


@pytest.mark.parametrize(("num_draws", "replicas"), [(None, 2), (None, 3), (1001, 3), (7, 4)])
def test_simulated_ranks_partition_the_epoch(
    voc_lt: tuple[np.ndarray, dict], num_draws: int | None, replicas: int
) -> None:
    labels = voc_lt[0]

    def sampler(**kw: int) -> RepeatFactorSampler:
        s = RepeatFactorSampler(labels, 0.1, num_draws=num_draws, seed=11, **kw)
        s.set_epoch(2)
        return s

    global_order = list(sampler(num_replicas=1, rank=0))
    size = len(global_order)
    if num_draws is not None:
        assert size == num_draws
    total = math.ceil(size / replicas) * replicas
    padded = [global_order[i % size] for i in range(total)]  # wrap, as DistributedSampler
    shards = [list(sampler(num_replicas=replicas, rank=r)) for r in range(replicas)]
    assert {len(s) for s in shards} == {total // replicas}
    for r, shard in enumerate(shards):
        assert shard == padded[r::replicas]  # positions r, r + R, ...: disjoint, cover the epoch
        s = sampler(num_replicas=replicas, rank=r)
        assert len(s) == s.num_draws_per_rank == len(shard)
        assert s.total_size == total


def test_fixed_length_chains_independent_roundings() -> None:
    # f = (1, 1/4) and t = 1: image 1 (the rare class) has factor 2, the others 1, so each
    # round holds 5 indices and 50 draws take 10 independently shuffled rounds.
    labels = np.array([[1, 0], [1, 1], [1, 0], [1, 0]])
    sampler = RepeatFactorSampler(labels, threshold=1.0, num_draws=50, seed=1)
    assert sampler.factors.tolist() == [1.0, 2.0, 1.0, 1.0]
    order = list(sampler)
    assert len(order) == len(sampler) == 50
    # whole factors: every complete round of 5 holds image 1 twice and the others once
    for start in range(0, 50, 5):
        assert sorted(order[start : start + 5]) == [0, 1, 1, 2, 3]


def test_length_defaults_to_the_epoch_rounding() -> None:
    labels = np.array([[1, 0], [0, 1], [0, 0]])
    sampler = RepeatFactorSampler(labels, threshold=1.0)
    # f = (1/3, 1/3): r = sqrt(3) for images 0 and 1, 1 for image 2
    assert sampler.num_images == 3
    for epoch in range(6):
        sampler.set_epoch(epoch)
        assert len(sampler) == sampler.num_draws == len(list(sampler)) in (3, 4, 5)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"threshold": 0.0}, ValueError, "`threshold` must be"),
        ({"threshold": 1.5}, ValueError, "`threshold` must be"),
        ({"threshold": "x"}, TypeError, "`threshold` must be a real number"),
        ({"num_draws": 0}, ValueError, "`num_draws` must be an integer"),
        ({"seed": -1}, ValueError, "`seed` must be"),
        ({"num_replicas": 2, "rank": 2}, ValueError, "`rank` must be"),
        ({"num_classes": 3}, ValueError, "labels"),
    ],
)
def test_bad_input(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        RepeatFactorSampler(np.array([[1, 0], [0, 1]]), **kwargs)


def test_bad_labels_and_epoch() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        repeat_factors(np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="labels"):
        repeat_factors(np.array([[2, 0]]))
    with pytest.raises(TypeError, match="labels"):
        repeat_factors([[1, 0]])
    with pytest.raises(ValueError, match="`epoch` must be"):
        RepeatFactorSampler(np.array([[1, 0]])).set_epoch(-1)


def test_threshold_is_kept_and_class_lists_take_num_classes() -> None:
    lists = [[0], [0], [0], [0, 1], []]
    sampler = RepeatFactorSampler.from_class_lists(lists, threshold=0.8)
    assert sampler.threshold == 0.8
    with pytest.raises(ValueError, match="num_classes"):
        RepeatFactorSampler.from_class_lists(lists, threshold=0.8, num_classes=1)


def test_num_replicas_is_checked_with_an_explicit_rank() -> None:
    labels = np.eye(3, dtype=np.int64)
    with pytest.raises(ValueError, match=r"`num_replicas` must be an integer >= 1, got 0"):
        RepeatFactorSampler(labels, threshold=0.5, num_replicas=0, rank=0)
