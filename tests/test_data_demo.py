import builtins

import pytest
import torch

from ltml.data import DemoMosaics, class_counts, class_groups, make_demo, pareto_quotas


@pytest.fixture(scope="module")
def train():
    return make_demo("train", seed=0)


@pytest.fixture(scope="module")
def test_set():
    return make_demo("test", seed=0)


def test_train_counts_follow_pareto_profile(train):
    counts = class_counts(train.labels)
    assert counts.tolist() == pareto_quotas(10, 800).tolist()
    assert counts.tolist() == [800, 344, 162, 82, 45, 25, 15, 10, 6, 4]
    assert 1000 <= len(train) <= 1300
    assert bool((train.labels.sum(1) >= 1).all())


def test_train_groups_like_voc_lt(train):
    groups = class_groups(class_counts(train.labels))
    assert groups == {"head": [0, 1, 2], "medium": [3, 4, 5], "tail": [6, 7, 8, 9]}


def test_test_set_is_balanced(test_set):
    counts = class_counts(test_set.labels).double()
    assert len(test_set) == 1000
    # 1-3 distinct uniform digits: E[count] = 1000 * 2 / 10 = 200, sd ~ 13; 5 sd bound
    assert bool(((counts - 200).abs() < 65).all())
    assert set(test_set.labels.sum(1).tolist()) == {1, 2, 3}


def test_train_and_test_tiles_are_disjoint(train, test_set):
    other = make_demo("test", seed=7, num_test=300)
    tr = set(train.source_indices.tolist())
    assert not tr & set(test_set.source_indices.tolist())
    assert not tr & set(other.source_indices.tolist())
    assert len(tr) > 300  # hundreds of distinct tiles, not a handful


@pytest.mark.parametrize("split", ["train", "test"])
def test_deterministic_from_seed(split):
    kwargs = {"max_count": 60} if split == "train" else {"num_test": 40}
    a, b, c = (make_demo(split, seed=s, **kwargs) for s in (3, 3, 4))
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images[: len(c)], c.images[: len(a)])


def test_images_and_getitem(test_set):
    assert test_set.images.shape == (1000, 3, 32, 32)
    assert test_set.images.dtype == torch.float32
    assert float(test_set.images.min()) >= 0.0
    assert float(test_set.images.max()) <= 1.0
    image, label = test_set[3]
    assert torch.equal(image, test_set.images[3])
    assert label.dtype == torch.float32
    assert torch.equal(label, test_set.labels[3].float())
    assert test_set.classes == tuple("0123456789")
    flipped = DemoMosaics(
        test_set.images, test_set.labels, test_set.source_indices, transform=lambda x: x.flip(-1)
    )
    assert torch.equal(flipped[3][0], image.flip(-1))


def test_digits_drawn_in_labelled_cells(test_set):
    # a cell is bright only where a digit was drawn: count the cells whose peak is well above
    # the noise (0.1 sd) and compare with the number of labels
    cells = test_set.images.mean(1).unfold(1, 8, 8).unfold(2, 8, 8)  # (N, 4, 4, 8, 8)
    bright = (cells.amax(dim=(-1, -2)) > 0.45).sum(dim=(1, 2))
    agree = (bright == test_set.labels.sum(1)).double().mean()
    assert agree > 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "val"}, "`split`"),
        ({"max_count": 0}, "`max_count`"),
        ({"num_test": 0}, "`num_test`"),
        ({"noise": -1.0}, "`noise`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_demo(**kwargs)


def test_missing_sklearn_message(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"pip install ltml-components\[examples\]"):
        make_demo("test", num_test=2)
