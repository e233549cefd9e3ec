import numpy as np
import pytest
import torch

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
