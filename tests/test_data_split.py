from __future__ import annotations

import numpy as np
import pytest
import torch

from ltml.data import split_deviation, stratified_split


def _literal_iterative_stratification(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> np.ndarray:
    """Sechidis et al. (2011), Algorithm 1, one image at a time, as the paper states it.

    The random choices are drawn as stratified_split draws them (an image order, a tie-break per
    class, a tie-break per part each time a class is dealt out), so both must give the same parts.
    Plus the one documented addition: a part with no positive of the class is served first.
    """
    n, c = labels.shape
    r = np.asarray(fractions)
    positive = labels == 1
    rng = np.random.default_rng(seed)
    rank = rng.permutation(n)
    class_tie = rng.random(c)
    desired = n * r  # c_j, before any image is dealt out
    desired_class = positive.sum(0)[:, None] * r[None, :]  # c_j^i
    got = np.zeros((c, r.size), dtype=int)
    got_images = np.zeros(r.size, dtype=int)
    part = np.full(n, -1)
    while True:
        left = positive[part < 0].sum(0)
        if not left.any():
            break
        fewest = min(left[left > 0])
        label = min((k for k in range(c) if left[k] == fewest), key=lambda k: class_tie[k])
        part_tie = rng.random(r.size)
        for i in sorted(np.flatnonzero(positive[:, label] & (part < 0)), key=lambda i: rank[i]):
            key = [
                (
                    got[label, j] == 0,
                    desired_class[label, j] - got[label, j],
                    desired[j] - got_images[j],
                    part_tie[j],
                )
                for j in range(r.size)
            ]
            j = max(range(r.size), key=lambda j: key[j])
            part[i] = j
            got[positive[i], j] += 1
            got_images[j] += 1
    part_tie = rng.random(r.size)
    for i in sorted(np.flatnonzero(part < 0), key=lambda i: rank[i]):
        j = max(range(r.size), key=lambda j: (desired[j] - got_images[j], part_tie[j]))
        part[i] = j
        got_images[j] += 1
    return part


def _long_tailed(n: int, c: int, seed: int, unknown: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = 0.5 / np.arange(1, c + 1) ** 1.2
    labels = (rng.random((n, c)) < rate).astype(np.int64)
    labels[rng.random((n, c)) < unknown] = -1
    return labels


def _parts_as_array(parts: tuple[torch.Tensor, ...], n: int) -> np.ndarray:
    part = np.full(n, -1)
    for j, idx in enumerate(parts):
        part[idx.numpy()] = j
    return part


@pytest.mark.parametrize(
    ("n", "c", "fractions", "seed", "unknown"),
    [
        (60, 5, (0.5, 0.5), 0, 0.0),
        (90, 8, (0.8, 0.1, 0.1), 1, 0.0),
        (120, 12, (0.6, 0.2, 0.2), 2, 0.2),
        (50, 3, (0.25, 0.25, 0.25, 0.25), 3, 0.0),
        (7, 4, (0.5, 0.3, 0.2), 4, 0.0),
    ],
)
def test_matches_a_literal_transcription_of_the_algorithm(
    n: int, c: int, fractions: tuple[float, ...], seed: int, unknown: float
) -> None:
    labels = _long_tailed(n, c, seed, unknown)
    expected = _literal_iterative_stratification(labels, fractions, seed)
    parts = stratified_split(labels, fractions, seed=seed)
    np.testing.assert_array_equal(_parts_as_array(parts, n), expected)


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.5), (0.6, 0.2, 0.1, 0.1)])
def test_every_class_with_enough_positives_reaches_every_part(
    fractions: tuple[float, ...],
) -> None:
    labels = _long_tailed(500, 30, seed=5)
    parts = stratified_split(labels, fractions, seed=0)
    assert sorted(torch.cat(parts).tolist()) == list(range(500))  # a partition
    counts = (labels == 1).sum(0)
    per_part = np.stack([(labels[p.numpy()] == 1).sum(0) for p in parts])
    enough = counts >= len(fractions)
    assert enough.sum() > 10
    assert (per_part[:, enough] > 0).all()
    sizes = np.array([len(p) for p in parts])
    np.testing.assert_allclose(sizes / 500, fractions, atol=0.02)


def test_seeded_and_deterministic() -> None:
    labels = torch.from_numpy(_long_tailed(200, 10, seed=0))
    a = stratified_split(labels, (0.7, 0.3), seed=3)
    b = stratified_split(labels.numpy(), (0.7, 0.3), seed=3)
    c = stratified_split(labels, (0.7, 0.3), seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])


def test_unknown_labels_are_not_positives() -> None:
    labels = np.zeros((12, 2), dtype=np.int64)
    labels[:3, 0] = 1
    labels[3:, 0] = -1  # unknown: must not be dealt out as positives of class 0
    labels[3:6, 1] = 1
    parts = stratified_split(labels, (1 / 3, 1 / 3, 1 / 3), seed=0)
    for k in (0, 1):
        assert [int((labels[p.numpy(), k] == 1).sum()) for p in parts] == [1, 1, 1]


def test_split_deviation_by_hand() -> None:
    labels = torch.tensor([[1, 0, -1], [1, 1, 0], [0, 1, 0], [1, 0, 0]])
    parts = [torch.tensor([0, 1, 2]), torch.tensor([3])]
    dev = split_deviation(labels, parts, (0.75, 0.25))
    # class 0: 2 of its 3 positives in part 0 -> 2/3 - 0.75; class 1: both in part 0 -> 1 - 0.75
    expected = torch.tensor([[2 / 3 - 0.75, 1 / 3 - 0.25], [0.25, -0.25], [np.nan, np.nan]])
    torch.testing.assert_close(dev, expected.double(), equal_nan=True)
    # default targets: the parts' sizes, 3/4 and 1/4 here
    torch.testing.assert_close(split_deviation(labels, parts), dev, equal_nan=True)


def _mean_abs_deviation(labels: np.ndarray, parts: list, fractions: tuple[float, ...]) -> float:
    return float(split_deviation(labels, parts, fractions).abs().nanmean())


@pytest.mark.parametrize("dataset", ["voc_lt", "coco_lt"])
@pytest.mark.parametrize("fractions", [(0.8, 0.2), (0.7, 0.1, 0.2)])
def test_no_worse_than_random_on_the_real_benchmarks(
    dataset: str, fractions: tuple[float, ...], request: pytest.FixtureRequest
) -> None:
    labels, _ = request.getfixturevalue(dataset)
    n = len(labels)
    stratified = _mean_abs_deviation(labels, list(stratified_split(labels, fractions)), fractions)
    sizes = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    randoms = []
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(n)
        randoms.append(_mean_abs_deviation(labels, np.split(order, sizes), fractions))
    # better than every one of 20 random splits, not only their mean
    assert stratified < min(randoms)
    counts = (labels == 1).sum(0)
    parts = stratified_split(labels, fractions)
    per_part = np.stack([(labels[p.numpy()] == 1).sum(0) for p in parts])
    assert (per_part[:, counts >= len(fractions)] > 0).all()


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.8, 0.3), r"`fractions` must sum to 1, got \(0\.8, 0\.3\)"),
        ((1.0, 0.0), r"`fractions` must be positive shares"),
        ((), r"`fractions` must be positive shares"),
    ],
)
def test_bad_fractions(fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stratified_split(torch.ones(4, 2), fractions)


def test_bad_labels_and_parts() -> None:
    with pytest.raises(ValueError, match=r"`labels` must contain only values in"):
        stratified_split(torch.tensor([[2, 0], [1, 0]]), (0.5, 0.5))
    labels = torch.ones(4, 1)
    with pytest.raises(ValueError, match=r"`parts` must be disjoint, but part 1 repeats"):
        split_deviation(labels, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"`parts\[0\]` must hold image indices in \[0, 4\)"):
        split_deviation(labels, [[0, 9]])
    with pytest.raises(ValueError, match=r"one entry per part \(2\), got 3"):
        split_deviation(labels, [[0], [1]], (0.2, 0.3, 0.5))
