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
    assert stats.__all__ == ["class_counts", "class_groups", "class_weights", "cooccurrence"]
    exported = {
        ltml: ("class_counts", "class_groups", "class_weights"),
        ltml.data: ("class_counts", "class_groups", "cooccurrence"),
    }
    for module, names in exported.items():
        for name in names:
            assert name in module.__all__
            assert getattr(module, name) is getattr(stats, name), f"{module.__name__}.{name}"
