"""Tests of ltml.data.partial: the label-drop simulators and the PLT-style builder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltml.data import (
    PLT_PROFILES,
    class_counts,
    drop_labels,
    make_long_tailed,
    make_plt,
    pareto_quotas,
)


def _labels(n: int = 2000, c: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, c, generator=g) < torch.linspace(0.5, 0.02, c)).long()
    y[:5, 0] = -1  # some labels are unknown already
    return y


def _binomial_ok(count: int, n: int, rate: float) -> bool:
    """Within 5 standard deviations of ``n * rate``: fails by chance with probability < 1e-6."""
    return abs(count - n * rate) <= 5 * math.sqrt(n * rate * (1 - rate)) + 1


@pytest.mark.parametrize("scheme", ["random", "per-class", "positives"])
def test_deterministic_new_and_type_preserving(scheme):
    y = _labels()
    before = y.clone()
    a = drop_labels(y, 0.4, scheme=scheme, seed=3)
    assert torch.equal(a, drop_labels(y, 0.4, scheme=scheme, seed=3))
    assert not torch.equal(a, drop_labels(y, 0.4, scheme=scheme, seed=4))
    assert torch.equal(y, before)  # a new matrix; the input is untouched
    assert a.dtype == y.dtype
    assert isinstance(a, torch.Tensor)
    as_numpy = drop_labels(y.numpy().astype(np.int8), 0.4, scheme=scheme, seed=3)
    assert isinstance(as_numpy, np.ndarray)
    assert as_numpy.dtype == np.int8
    assert np.array_equal(as_numpy, a.numpy())


def test_random_drops_each_known_label_with_probability_rate():
    y = _labels()
    got = drop_labels(y, 0.4, seed=0)
    known = y >= 0
    dropped = known & (got == -1)
    assert _binomial_ok(int(dropped.sum()), int(known.sum()), 0.4)
    for value in (0, 1):  # positives and negatives alike
        cell = y == value
        assert _binomial_ok(int((dropped & cell).sum()), int(cell.sum()), 0.4)
    assert torch.equal(got[~dropped], y[~dropped])  # nothing else changes
    assert bool((got[~known] == -1).all())


def test_per_class_drops_an_exact_number_per_class():
    y = _labels()
    got = drop_labels(y, 0.4, scheme="per-class", seed=0)
    known = (y >= 0).sum(dim=0)
    dropped = ((y >= 0) & (got == -1)).sum(dim=0)
    assert torch.equal(dropped, torch.round(0.4 * known.double()).long())
    assert torch.equal(got[got >= 0], y[got >= 0])


def test_positives_scheme_keeps_every_negative():
    y = _labels()
    got = drop_labels(y, 0.5, scheme="positives", seed=0)
    assert torch.equal(got[y == 0], y[y == 0])
    dropped = (y == 1) & (got == -1)
    assert _binomial_ok(int(dropped.sum()), int((y == 1).sum()), 0.5)


def test_comic_convention_turns_dropped_positives_into_zeros():
    y = _labels()
    minus = drop_labels(y, 0.4, seed=1)
    zero = drop_labels(y, 0.4, seed=1, unknown_value=0)
    # The same entries are dropped; with 0 a dropped negative is unchanged, a positive becomes
    # a (false) negative, and no new -1 appears.
    dropped = (y >= 0) & (minus == -1)
    assert bool((zero[dropped] == 0).all())
    assert torch.equal(zero[~dropped], y[~dropped])
    assert int((zero == -1).sum()) == int((y == -1).sum())
    assert torch.equal(class_counts(zero), class_counts(minus))


def test_rate_zero_and_one():
    y = _labels()
    assert torch.equal(drop_labels(y, 0.0, seed=0), y)
    for scheme in ("random", "per-class"):
        assert bool((drop_labels(y, 1.0, scheme=scheme, seed=0) == -1).all())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 1.5}, r"`rate` must be a finite real number in \[0, 1\], got 1.5"),
        ({"rate": 0.4, "scheme": "blocks"}, "`scheme` must be one of"),
        ({"rate": 0.4, "unknown_value": 2}, "`unknown_value` must be -1 or 0, got 2"),
    ],
)
def test_bad_drop_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        drop_labels(_labels(), **kwargs)


def test_bad_labels_are_named():
    with pytest.raises(ValueError, match="`labels` must contain only values in"):
        drop_labels(torch.tensor([[2, 0]]), 0.4)
    with pytest.raises(ValueError, match="`labels` must be 2-D"):
        drop_labels(torch.tensor([1, 0]), 0.4)


def test_make_plt_errors():
    with pytest.raises(ValueError, match="`profile` must be one of"):
        make_plt(_labels(), "lvis")
    with pytest.raises(
        ValueError, match=r"`missing_rate` must be a finite real number in \[0, 1\)"
    ):
        make_plt(_labels(), "voc", missing_rate=1.0)


def test_plt_voc_profile_against_the_published_one(voc_pool):
    built = make_plt(voc_pool, "voc", seed=0)
    again = make_plt(voc_pool, "voc", seed=0)
    assert torch.equal(built.indices, again.indices)
    assert torch.equal(built.labels, again.labels)
    full = torch.from_numpy(voc_pool)[built.indices]
    known = built.labels >= 0
    assert torch.equal(built.labels[known], full[known])
    assert _binomial_ok(int((~known).sum()), known.numel(), 0.4)
    # Published PLT-VOC: 2,569 images, 20 classes, 1,117 / 7 per class (partial labels). The
    # recipe lands near it (the authors' selection is unpublished): within 10% on the images,
    # 20% on the largest class, and a smallest class of the same order.
    published = PLT_PROFILES["voc"]
    counts = class_counts(built.labels)
    assert built.labels.shape[1] == published.classes
    assert abs(len(built.indices) - published.images) <= 0.10 * published.images
    assert abs(counts.max().item() - published.max_count) <= 0.20 * published.max_count
    assert 1 <= counts.min().item() <= 2 * published.min_count


@pytest.mark.parametrize("profile", ["voc", "coco"])
def test_make_plt_is_the_lt_recipe_then_the_drop(profile):
    g = torch.Generator().manual_seed(1)
    c = PLT_PROFILES[profile].classes
    pool = (torch.rand(6000, c, generator=g) < 0.03).long()
    built = make_plt(pool, profile, missing_rate=0.4, seed=2)
    # The largest quota is the published maximum over the kept fraction of labels.
    top = round(PLT_PROFILES[profile].max_count / 0.6)
    indices = make_long_tailed(pool, pareto_quotas(c, top), seed=2)
    assert torch.equal(built.indices, indices)
    assert torch.equal(built.labels, drop_labels(pool[indices], 0.4, seed=2))
