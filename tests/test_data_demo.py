import builtins
import functools
import itertools

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
    assert test_set.labels.dtype == torch.int64
    assert make_demo("train", max_count=20).labels.dtype == torch.int64
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


@functools.cache
def _templates(cell):
    """Every load_digits image upscaled to the cell (the oracle: torch's bilinear interpolate),
    as unit vectors, with its digit."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    tiles = torch.from_numpy(bunch.images / 16.0).float()[:, None]
    big = torch.nn.functional.interpolate(tiles, size=(cell, cell), mode="bilinear")[:, 0]
    flat = big.flatten(1)
    return flat / flat.norm(dim=1, keepdim=True), torch.from_numpy(bunch.target)


def _read_cells(images, cell, ink):
    """Per image, the (nearest template, cosine similarity) of each cell with ink in it."""
    templates, _ = _templates(cell)
    cells = images.mean(1).unfold(1, cell, cell).unfold(2, cell, cell).flatten(3).flatten(1, 2)
    inked = cells.amax(2) > ink  # (N, G * G)
    x = cells[inked]
    best = ((x / x.norm(dim=1, keepdim=True)) @ templates.T).max(1)
    per_image = inked.sum(1).tolist()
    pairs = list(zip(best.indices.tolist(), best.values.tolist(), strict=True))
    starts = np.cumsum([0, *per_image])
    return [pairs[a:b] for a, b in itertools.pairwise(starts)]


def _halves():
    """The documented source split: per digit, the first half of its images in library order."""
    from sklearn.datasets import load_digits

    target = load_digits().target
    train, test = set(), set()
    for d in range(10):
        idx = np.flatnonzero(target == d)
        train |= set(idx[: len(idx) // 2].tolist())
        test |= set(idx[len(idx) // 2 :].tolist())
    return {"train": train, "test": test}


@pytest.mark.parametrize(
    ("split", "grid", "cell"), [("train", 2, 16), ("test", 2, 16), ("test", 3, 8)]
)
def test_each_glyph_is_its_labelled_digit(split, grid, cell):
    # Noise-free, each inked cell is colour * one upscaled load_digits tile: its nearest
    # template is that very tile (similarity 1), whose digit must be one the image is labelled
    # with, every labelled digit drawn once, from the split's own half of the tiles.
    kwargs = {"max_count": 30} if split == "train" else {"num_test": 60}
    data = make_demo(split, grid=grid, cell=cell, noise=0.0, **kwargs)
    _, digit_of = _templates(cell)
    allowed = _halves()[split]
    for found, labels in zip(_read_cells(data.images, cell, 0.0), data.labels, strict=True):
        assert all(similarity > 1 - 1e-5 for _, similarity in found)
        drawn = sorted(int(digit_of[tile]) for tile, _ in found)
        assert drawn == torch.nonzero(labels).flatten().tolist()
        assert {tile for tile, _ in found} <= allowed


def test_glyphs_are_readable_through_the_noise(test_set):
    # With the default noise, nearest-template reading still recovers the labelled digits.
    _, digit_of = _templates(16)
    found = _read_cells(test_set.images[:300], 16, 0.45)
    read = [sorted(int(digit_of[tile]) for tile, _ in cells) for cells in found]
    truth = [torch.nonzero(row).flatten().tolist() for row in test_set.labels[:300]]
    agree = np.mean([r == t for r, t in zip(read, truth, strict=True)])
    assert agree > 0.97


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


def test_each_glyph_has_its_own_colour():
    # Noise-free, a cell's three channels are colour_c * tile with colour_c uniform in [0.5, 1]:
    # channel ratios lie in [0.5, 2] and vary from cell to cell.
    data = make_demo("test", num_test=60, noise=0.0)
    cells = data.images.unfold(2, 16, 16).unfold(3, 16, 16).flatten(4).amax(4)  # N, 3, G, G
    peaks = cells.permute(0, 2, 3, 1).reshape(-1, 3)
    peaks = peaks[peaks.amax(1) > 0]
    ratios = peaks[:, 0] / peaks[:, 1]
    assert bool(((ratios >= 0.5 - 1e-6) & (ratios <= 2 + 1e-6)).all())
    assert float(ratios.std()) > 0.1


def test_the_demo_data_are_pinned(train):
    """The demo's recorded results (examples/reproduce/README.md) hold only while the same
    (split, seed) gives the same data: the label rows and the tiles used must not move between
    releases."""
    assert len(train) == 1104
    rows = [[0, 0], [0, 1], [1, 0], [1, 2], [2, 1], [3, 0], [3, 5]]
    assert train.labels[:4].nonzero().tolist() == rows
    assert train.source_indices[:6].tolist() == [0, 1, 2, 3, 10, 11]
    test = make_demo("test", seed=0, num_test=50)
    assert test.labels[:6].nonzero().tolist() == [
        [0, 1], [0, 2], [1, 0], [1, 3], [1, 6], [2, 0], [2, 6], [2, 9], [3, 3], [3, 5], [4, 1],
        [5, 0], [5, 4], [5, 5],
    ]  # fmt: skip


def test_documented_defaults():
    explicit = make_demo("test", 0, num_test=4, grid=2, cell=16, noise=0.05)
    default = make_demo("test", num_test=4)
    assert torch.equal(default.images, explicit.images)
    assert torch.equal(default.labels, explicit.labels)


def test_make_demo_passes_its_transform_on():
    data = make_demo("test", num_test=2, transform=lambda x: x[:1])
    assert data[1][0].shape == (1, 32, 32)


def test_noise_covers_the_glyphs_too():
    # Same (split, seed) with and without noise: same draws otherwise, so where neither image is
    # clipped the difference is the Gaussian noise itself, inside the glyphs as in the background.
    clean = make_demo("test", num_test=16, noise=0.0)
    noisy = make_demo("test", num_test=16, noise=0.05)
    assert torch.equal(clean.labels, noisy.labels)
    glyph = (clean.images > 0) & (clean.images < 0.9) & (noisy.images > 0) & (noisy.images < 1)
    assert int(glyph.sum()) > 1000
    assert float((noisy.images - clean.images)[glyph].std()) == pytest.approx(0.05, rel=0.1)


def test_strokes_reach_full_brightness():
    # load_digits' 0..16 grey levels map to [0, 1]; with a colour near 1 a stroke nears 1.0
    images = make_demo("test", num_test=100, noise=0.0, cell=8).images
    assert float(images.max()) > 0.99


def test_mosaics_reject_bad_arguments(test_set):
    images, labels, used = test_set.images[:4], test_set.labels[:4], test_set.source_indices
    for args, error, match in [
        ((images.numpy(), labels), TypeError, r"`images` must be a torch.Tensor, got ndarray"),
        ((images.long(), labels), TypeError, r"`images` must be a floating-point tensor"),
        ((images, labels[:, :9]), ValueError, r"`labels` must .*10"),
        ((images[:, 0], labels), ValueError, r"`images` must be \(N, channels, height, width\)"),
        ((images[:3], labels), ValueError, r"one image per row of `labels`, got shapes"),
    ]:
        with pytest.raises(error, match=match):
            DemoMosaics(*args, used)
    with pytest.raises(TypeError, match=r"`transform` must be a callable or None, got int"):
        DemoMosaics(images, labels, used, transform=5)
    with pytest.raises(TypeError, match=r"`transform` must be a callable or None, got int"):
        make_demo("test", num_test=2, transform=5)
