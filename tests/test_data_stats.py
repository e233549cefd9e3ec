import math

import numpy as np
import pytest
import torch

import ltml
from ltml import class_weights, stats
from ltml.data import class_counts, class_groups


def test_class_counts_ignores_unknown():
    y = torch.tensor([[1, 0, -1], [1, 1, -1], [0, -1, 1]])
    assert class_counts(y).tolist() == [2, 1, 1]
    assert class_counts(y.numpy()).tolist() == [2, 1, 1]


@pytest.mark.parametrize(("fixture", "sizes"), [("voc_lt", (6, 6, 8)), ("coco_lt", (22, 33, 25))])
def test_groups_match_published_split(request, fixture, sizes):
    labels, split = request.getfixturevalue(fixture)
    counts = class_counts(labels)
    assert counts.tolist() == split["class_freq"]
    groups = class_groups(counts)
    assert tuple(len(g) for g in groups.values()) == sizes
    for name in ("head", "medium", "tail"):
        assert groups[name] == sorted(split[name])


def test_class_groups_thresholds_are_inclusive_below():
    assert class_groups([19, 20, 99, 100]) == {"head": [3], "medium": [1, 2], "tail": [0]}
    assert class_groups(np.array([5, 50]), thresholds=(10, 10)) == {
        "head": [1],
        "medium": [],
        "tail": [0],
    }


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (torch.tensor([1, 0]), ValueError, r"`labels` must be 2-D of shape \(N, C\), got 1-D"),
        (
            torch.tensor([[2, 0]]),
            ValueError,
            r"`labels` must contain only values in \{0, 1, -1\}, got 2",
        ),
        ([[1, 0]], TypeError, r"`labels` must be a torch\.Tensor or numpy\.ndarray, got list"),
    ],
)
def test_class_counts_rejects_bad_labels(labels, error, match):
    with pytest.raises(error, match=match):
        class_counts(labels)


@pytest.mark.parametrize(
    ("counts", "thresholds", "match"),
    [
        ([], (20, 100), "non-empty 1-D"),
        ([3, -1], (20, 100), "non-negative"),
        ([3], (100, 20), "thresholds"),
    ],
)
def test_class_groups_rejects_bad_input(counts, thresholds, match):
    with pytest.raises(ValueError, match=match):
        class_groups(counts, thresholds)


# --- group limits that follow the data ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_share_limits_against_their_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 5000))
    counts = rng.integers(0, n + 1, size=30)
    a, b = sorted(rng.random(2) * rng.choice([0.1, 1.0]))
    groups = class_groups(counts, shares=(a, b), num_images=n)
    # literal: tail below a share a of the images, head from a share b on
    assert groups["tail"] == [k for k in range(30) if counts[k] < a * n]
    assert groups["head"] == [k for k in range(30) if counts[k] >= b * n]
    assert groups == class_groups(counts, stats.group_limits(counts, shares=(a, b), num_images=n))


def test_voc_lt_limits_as_shares_give_the_published_groups(voc_lt):
    labels, split = voc_lt
    n = labels.shape[0]
    limits = stats.group_limits(class_counts(labels), shares=(20 / n, 100 / n), num_images=n)
    assert limits == (20, 100)  # no float noise: 20 / 1142 * 1142 is 20
    groups = class_groups(class_counts(labels), shares=(20 / n, 100 / n), num_images=n)
    assert all(groups[g] == sorted(split[g]) for g in ("head", "medium", "tail"))


@pytest.mark.parametrize("quantiles", [(1 / 3, 2 / 3), (0.2, 0.8), (0.0, 1.0), (0.5, 0.5)])
def test_quantile_limits_against_numpy(quantiles):
    counts = np.random.default_rng(1).integers(0, 1000, size=40)
    expected = tuple(math.ceil(q) for q in np.quantile(counts.astype(float), quantiles))
    assert stats.group_limits(counts, quantiles=quantiles) == expected


def test_nih_groups_follow_the_data(nih_cxr14):
    counts = class_counts(nih_cxr14)
    assert class_groups(counts)["head"] == list(range(14))  # the benchmarks' limits: all head
    by_share = class_groups(counts, shares=(0.02, 0.1), num_images=len(nih_cxr14))
    by_quantile = class_groups(counts, quantiles=(1 / 3, 2 / 3))
    for groups in (by_share, by_quantile):
        assert all(len(groups[g]) >= 3 for g in ("head", "medium", "tail")), groups
    assert [len(g) for g in by_quantile.values()] == [5, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"thresholds": (20, 100), "shares": (0.1, 0.2)},
            ValueError,
            r"give at most one of `thresholds`, `shares` and `quantiles` .* got `thresholds` "
            r"and `shares`",
        ),
        ({"shares": (0.1, 0.2)}, ValueError, r"`num_images` must be given with `shares`"),
        ({"shares": (0.1, 0.2), "num_images": -3}, ValueError, r"`num_images` must be an integer"),
        (
            {"shares": (0.3, 0.2), "num_images": 9},
            ValueError,
            r"`shares\[1\]` must be .* in \[0\.3, 1\], got 0\.2",
        ),
        (
            {"shares": (-0.1, 0.2), "num_images": 9},
            ValueError,
            r"`shares\[0\]` must be .*in \[0, 1\]",
        ),
        ({"quantiles": (0.5, 1.5)}, ValueError, r"`quantiles\[1\]` must be .*got 1\.5"),
        ({"quantiles": 0.5}, TypeError, r"`quantiles` must be a pair \(low, high\)"),
        ({"quantiles": (math.nan, 0.5)}, ValueError, r"`quantiles\[0\]` must be a finite"),
        ({"shares": ("a", 0.5), "num_images": 9}, TypeError, r"`shares\[0\]` must be a real"),
    ],
)
def test_group_limits_reject(kwargs, error, match):
    with pytest.raises(error, match=match):
        class_groups([3, 1, 2], **kwargs)


# --- class_weights: literal transcriptions of each published formula ---------------------------

WEIGHT_COUNTS = [775, 154, 48, 11, 4, 0]


def _mean_one(w):
    return [x * len(w) / sum(w) for x in w]


@pytest.mark.parametrize("power", [1.0, 0.5, 0.0, 2.0])
def test_class_weights_inverse_frequency(power):
    expected = _mean_one([max(n, 1) ** -power for n in WEIGHT_COUNTS])
    got = class_weights(WEIGHT_COUNTS, method="inverse", power=power)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999, 0.9999])
def test_class_weights_effective_number(beta):
    # Cui et al. (CVPR 2019), Eq. 3: (1 - beta) / (1 - beta^n), normalised to sum C.
    expected = _mean_one([(1 - beta) / (1 - beta ** max(n, 1)) for n in WEIGHT_COUNTS])
    got = class_weights(WEIGHT_COUNTS, method="effective_number", beta=beta)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32))


def test_class_weights_omega():
    # Guo & Wang (CVPR 2021), Eq. 2: e^(1 - p) for positives, e^p for negatives, p = n / N.
    n_images = 1142
    pos = [math.exp(1 - n / n_images) for n in WEIGHT_COUNTS]
    neg = [math.exp(n / n_images) for n in WEIGHT_COUNTS]
    got = class_weights(WEIGHT_COUNTS, n_images, method="omega")
    torch.testing.assert_close(got, torch.tensor([pos, neg], dtype=torch.float32))


def test_class_weights_from_real_counts_rank_tail_highest(voc_lt):
    labels, _ = voc_lt
    counts = class_counts(labels)
    for method in ("inverse", "effective_number"):
        w = class_weights(counts, labels.shape[0], method=method)
        assert int(w.argmax()) == int(counts.argmin())
        torch.testing.assert_close(w.mean(), torch.tensor(1.0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"method": "median"},
            ValueError,
            "^`method` must be one of 'inverse', 'effective_number', 'omega', got str 'median'$",
        ),
        ({"method": "omega"}, ValueError, "`num_images` is required by method='omega'"),
        ({"power": -1.0}, ValueError, "`power` must be a finite real number >= 0"),
        ({"method": "effective_number", "beta": 1.0}, ValueError, r"`beta` must be .* in \[0, 1\)"),
        ({"num_images": 100}, ValueError, "`counts` cannot exceed num_images=100"),
    ],
)
def test_class_weights_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        class_weights(WEIGHT_COUNTS, **kwargs)


def test_stats_are_the_same_objects_from_every_import_path():
    assert stats.__all__ == [
        "class_counts",
        "class_groups",
        "class_weights",
        "cooccurrence",
        "group_limits",
    ]
    exported = {
        ltml: ("class_counts", "class_groups", "class_weights"),
        ltml.data: ("class_counts", "class_groups", "cooccurrence"),
    }
    for module, names in exported.items():
        for name in names:
            assert name in module.__all__
            assert getattr(module, name) is getattr(stats, name), f"{module.__name__}.{name}"
