import builtins

import numpy as np
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


def _bright_cells(images, cell):
    # a cell is bright only where a digit was drawn: its peak is well above the noise
    cells = images.mean(1).unfold(1, cell, cell).unfold(2, cell, cell)  # (N, G, G, cell, cell)
    return (cells.amax(dim=(-1, -2)) > 0.45).sum(dim=(1, 2))


@pytest.mark.parametrize(("grid", "cell", "noise"), [(2, 16, 0.05), (4, 8, 0.1), (3, 11, 0.05)])
def test_digits_drawn_in_labelled_cells(grid, cell, noise):
    test_set = make_demo("test", grid=grid, cell=cell, noise=noise, num_test=300)
    assert test_set.images.shape == (300, 3, grid * cell, grid * cell)
    agree = (_bright_cells(test_set.images, cell) == test_set.labels.sum(1)).double().mean()
    assert agree > 0.95


def test_default_glyphs_are_upscaled_digits():
    # noise-free, one digit per image: the drawn cell is colour * the 2x bilinear upscaled tile,
    # the other cells are 0; oracle: torch's interpolate of the load_digits image
    from sklearn.datasets import load_digits

    test_set = make_demo("test", num_test=20, noise=0.0)
    tiles = torch.from_numpy(load_digits().images / 16.0).float()[test_set.source_indices]
    big = torch.nn.functional.interpolate(tiles[:, None], scale_factor=2, mode="bilinear")[:, 0]
    for image, k in zip(test_set.images, test_set.labels.sum(1), strict=True):
        if k != 1:
            continue
        grey = image[0].unfold(0, 16, 16).unfold(1, 16, 16).reshape(4, 16, 16)
        drawn = grey[grey.amax(dim=(1, 2)) > 0]
        assert len(drawn) == 1
        ratio = drawn[0].flatten() / drawn[0].max()
        candidates = big.flatten(1) / big.flatten(1).amax(1, keepdim=True)
        assert bool(((candidates - ratio).abs().amax(1) < 1e-5).any())


@pytest.mark.parametrize("grid", [2, 3])
def test_train_rows_fit_the_grid(grid):
    train = make_demo("train", grid=grid, cell=8, max_count=200)
    assert int(train.labels.sum(1).max()) <= grid * grid
    assert class_counts(train.labels).tolist() == pareto_quotas(10, 200).tolist()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "val"}, "`split`"),
        ({"max_count": 0}, "`max_count`"),
        ({"num_test": 0}, "`num_test`"),
        ({"noise": -1.0}, "`noise`"),
        ({"grid": 1}, "`grid` must be an integer >= 2"),
        ({"cell": 0}, "`cell` must be an integer >= 1"),
        ({"noise": float("nan")}, "`noise` must be a finite real number >= 0, got nan"),
        ({"seed": -1}, "`seed` must be an integer >= 0"),
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


@pytest.mark.parametrize(("room", "max_count"), [(1, 300), (2, 300), (4, 1), (1, 1), (4, 3)])
def test_long_tailed_labels_respect_room(room, max_count):
    from ltml.data.demo import _long_tailed_labels

    quotas = pareto_quotas(10, max_count).numpy()
    labels = _long_tailed_labels(np.random.default_rng(0), quotas, room)
    assert labels.sum(0).tolist() == quotas.tolist()
    assert int(labels.sum(1).max()) <= room
    assert int(labels.sum(1).min()) >= 1
