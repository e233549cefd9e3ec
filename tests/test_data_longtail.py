import numpy as np
import pytest
import torch

from ltml.data import class_counts, class_groups, cooccurrence_rank, make_long_tailed, pareto_quotas
from ltml.data.longtail import _pareto_pdf, _pareto_ppf


@pytest.mark.parametrize("shape", [1.5, 6.0])
def test_pareto_matches_scipy(shape):
    stats = pytest.importorskip("scipy.stats")
    x = np.linspace(0.5, 4.0, 57)
    np.testing.assert_allclose(_pareto_pdf(x, shape), stats.pareto.pdf(x, shape), rtol=1e-13)
    for q in (0.5, 0.9, 0.99):
        assert _pareto_ppf(q, shape) == pytest.approx(stats.pareto.ppf(q, shape), rel=1e-13)


def test_pareto_hand_values():
    # pdf(x) = b / x^(b+1), ppf(q) = (1 - q)^(-1/b)
    # at b=6: pdf(1) = 6, pdf(2) = 6/128, ppf(.99) = 100^(1/6)
    np.testing.assert_allclose(_pareto_pdf(np.array([0.9, 1.0, 2.0]), 6), [0.0, 6.0, 6 / 128])
    assert _pareto_ppf(0.99, 6) == pytest.approx(100 ** (1 / 6))


@pytest.mark.parametrize(
    ("num_classes", "max_count", "expected"),
    [
        # the VOC-LT quotas: n_k = int(pdf(x_k, 6) * 799 / 6 + 1), x = linspace(1, 100^(1/6), 20)
        (
            20,
            800,
            [800, 529, 359, 248, 175, 125, 91, 67, 50, 38, 29, 23, 18, 14, 11, 9, 7, 6, 5, 4],
        ),
        (1, 10, [10]),
    ],
)
def test_pareto_quotas_values(num_classes, max_count, expected):
    assert pareto_quotas(num_classes, max_count).tolist() == expected


def test_pareto_quotas_literal_transcription():
    x = np.linspace(1, 100 ** (1 / 6), 80)
    expected = [int(6 / xi**7 * 1199 / 6 + 1) for xi in x]
    q = pareto_quotas(80, 1200)
    assert q.dtype == torch.int64
    assert q.tolist() == expected


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 10), "num_classes"),
        ((3, 0), "max_count"),
        ((3, 10, 0.0), "shape"),
        ((3, 10, 1e-3), "`shape` must be large enough"),
        ((3, 2**60), "`max_count` must be an integer in"),
    ],
)
def test_pareto_quotas_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        pareto_quotas(*args)


def test_pareto_quotas_rejects_non_integer_counts():
    with pytest.raises(TypeError, match=r"`num_classes` must be an integer, got float 2\.5"):
        pareto_quotas(2.5, 10)


def _slow_rank(y):
    """Literal transcription: score_j = sum_i P(j | i), P(j | i) = |i and j| / |i|."""
    C = y.shape[1]
    score = []
    for j in range(C):
        s = 0.0
        for i in range(C):
            ni = sum(int(r[i]) for r in y)
            if ni:
                s += sum(int(r[i] and r[j]) for r in y) / ni
        score.append(s)
    return sorted(range(C), key=lambda j: (-score[j], j))


def test_cooccurrence_rank_matches_transcription():
    g = np.random.default_rng(3)
    y = (g.random((60, 6)) < [0.6, 0.1, 0.3, 0.05, 0.4, 0.0]).astype(np.int64)
    y[:5, 2] = -1  # unknown labels are not positives
    assert cooccurrence_rank(y).tolist() == _slow_rank(y == 1)


def test_make_long_tailed_brings_each_class_to_quota_when_visited():
    # disjoint classes: no co-occurrence, so every class lands exactly on its quota
    y = np.repeat(np.eye(4, dtype=np.int64), 50, axis=0)
    idx = make_long_tailed(y, [40, 3, 10, 1], seed=0, rank=False)
    assert class_counts(y[idx.numpy()]).tolist() == [40, 3, 10, 1]
    assert torch.equal(idx, idx.sort().values)
    assert idx.unique().numel() == idx.numel()


def test_make_long_tailed_rank_assigns_largest_quota_to_most_cooccurring():
    y = np.array([[1, 1, 0], [1, 0, 1], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]] * 5)
    idx = make_long_tailed(y, [1, 6, 3], seed=0)  # any order: sorted and assigned by rank
    counts = class_counts(y[idx.numpy()])
    assert cooccurrence_rank(y).tolist()[0] == 0
    assert int(counts[0]) == counts.max()


def test_make_long_tailed_takes_all_when_pool_too_small():
    y = np.array([[1, 0]] * 3 + [[0, 1]] * 10)
    idx = make_long_tailed(y, [5, 2], seed=1, rank=False)
    assert class_counts(y[idx.numpy()]).tolist() == [3, 2]


def test_make_long_tailed_is_seeded():
    g = np.random.default_rng(0)
    y = (g.random((500, 8)) < 0.2).astype(np.int64)
    q = pareto_quotas(8, 80)
    a, b, c = (make_long_tailed(y, q, seed=s) for s in (5, 5, 6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("labels", "quotas", "match"),
    [
        (np.zeros((4, 2), dtype=np.int64), [1, 2, 3], "one entry per class"),
        (np.zeros((4, 2), dtype=np.int64), [1, -2], "`quotas` must be non-negative counts"),
        (np.zeros((4, 2), dtype=np.int64), [1.5, 2], "`quotas` must be whole numbers"),
        (np.full((4, 2), 3), [1, 2], "values in"),
        (np.zeros(4, dtype=np.int64), [1], "2-D"),
    ],
)
def test_make_long_tailed_rejects_bad_input(labels, quotas, match):
    with pytest.raises(ValueError, match=match):
        make_long_tailed(labels, quotas)


def test_voc2012_pool_gives_voc_lt_shape(voc_pool):
    # Official VOC-LT: 1142 images, 775 max, 4 min, 6 / 6 / 8; see docs/lt_construction.md.
    assert voc_pool.shape == (11540, 20)
    q = pareto_quotas(20, 800)
    idx = make_long_tailed(voc_pool, q, seed=0)
    assert torch.equal(idx, make_long_tailed(voc_pool, q, seed=0))
    counts = class_counts(voc_pool[idx.numpy()])
    quota = torch.empty(20, dtype=torch.int64)
    quota[cooccurrence_rank(voc_pool)] = q
    assert bool((counts <= quota).all())  # visits only pull earlier classes down here
    assert int(counts.min()) == 4  # the last visited class meets its quota exactly
    assert 600 <= int(counts.max()) <= 800
    assert 1050 <= idx.numel() <= 1250
    groups = class_groups(counts)
    assert (len(groups["head"]), len(groups["medium"]), len(groups["tail"])) == (6, 6, 8)
    # the ranking reproduces the official class order (person, chair, car, ... cow)
    assert cooccurrence_rank(voc_pool)[[0, 1, -1]].tolist() == [14, 8, 9]
