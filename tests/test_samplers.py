"""Tests for ltml.samplers: rates (statistical bounds), determinism, shards, paired loading, errors.

Statistical checks use a fixed seed, so they are deterministic; their tolerances are chosen so that
a correct sampler fails them with probability below about 1e-4 for a fresh seed (chi-square p-value
> 1e-4, or a deviation below 5 standard deviations with Bonferroni over at most 80 classes).
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

from ltml import ClassAwareSampler, PairedDataset, PairedSampler
from ltml._label_forms import is_label_matrix, narrowest
from ltml.samplers._draws import draw_cycle, draw_random

P_MIN = 1e-4  # smallest chi-square p-value a correct sampler is allowed
Z_MAX = 5.0  # largest deviation in standard deviations


def _image_probabilities(labels: np.ndarray, power: float) -> np.ndarray:
    """Literal transcription: P(i) = sum over classes k of i of P(k) / n_k, P(k) ∝ n_k ** power."""
    positive = labels == 1
    n = positive.sum(axis=0).astype(np.float64)
    p_class = np.where(n > 0, np.where(n > 0, n, 1.0) ** power, 0.0)
    p_class /= p_class.sum()
    return positive @ np.where(n > 0, p_class / np.where(n > 0, n, 1.0), 0.0)


def _chi2_p(observed: np.ndarray, expected: np.ndarray) -> float:
    from scipy import stats  # here, not at the top: the spawned gloo workers import this module

    return float(stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)


def _csr_pair(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, classes = np.nonzero(labels == 1)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(images, minlength=labels.shape[0]))])
    return indptr, classes


def _to_lists(labels: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(row == 1).tolist() for row in labels]


@pytest.fixture(params=["voc_lt", "coco_lt"])
def real_labels(request: pytest.FixtureRequest) -> np.ndarray:
    return request.getfixturevalue(request.param)[0]


# -------------------------------------------------------------------------- label forms


@pytest.mark.parametrize("form", ["tensor", "bool", "lists", "csr", "csr_tensor"])
def test_label_forms_give_the_same_order(voc_lt: tuple[np.ndarray, dict], form: str) -> None:
    labels = voc_lt[0]
    as_form = {
        "tensor": torch.from_numpy(labels),
        "bool": labels == 1,
        "lists": _to_lists(labels),
        "csr": _csr_pair(labels),
        "csr_tensor": tuple(torch.from_numpy(a) for a in _csr_pair(labels)),
    }[form]
    reference = ClassAwareSampler(labels, seed=3)
    if form in ("tensor", "bool"):
        sampler = ClassAwareSampler(as_form, seed=3)
    else:
        sampler = ClassAwareSampler.from_class_lists(as_form, seed=3)
    np.testing.assert_array_equal(sampler.counts, voc_lt[1]["class_freq"])
    assert sampler.num_images == labels.shape[0]
    assert list(sampler) == list(reference)


def test_unknown_labels_are_not_counted() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 6)) < 0.3).astype(np.int64)
    partial = labels.copy()
    partial[rng.random(labels.shape) < 0.2] = -1
    known = np.where(partial == -1, 0, partial)
    sampler = ClassAwareSampler(partial, seed=1)
    np.testing.assert_array_equal(sampler.counts, known.sum(axis=0))
    assert list(sampler) == list(ClassAwareSampler(known, seed=1))


def test_trailing_empty_classes_from_num_classes() -> None:
    with pytest.warns(UserWarning, match=r"2 of 5 classes have no known positive image.*\[3, 4\]"):
        sampler = ClassAwareSampler.from_class_lists([[0], [1, 2], [2]], num_classes=5)
    np.testing.assert_array_equal(sampler.counts, [1, 1, 2, 0, 0])


# --------------------------------------------------------------- construction, exactly


def _class_positives(sampler: ClassAwareSampler) -> dict[int, list[int]]:
    """The sampler's per-class positive lists (class -> images), read from its CSR."""
    return {
        int(k): sampler._indices[start : start + count].tolist()
        for k, start, count in zip(sampler._drawable, sampler._starts, sampler._counts, strict=True)
    }


def _expected_positives(num_images: int, positives: list[tuple[int, int]]) -> dict[int, list[int]]:
    """Hand oracle: class -> increasing images, from the (image, class) positive pairs."""
    out: dict[int, list[int]] = {}
    for i, k in sorted(positives, key=lambda p: (p[1], p[0])):
        out.setdefault(k, []).append(i)
    assert all(i < num_images for i, _ in positives)
    return out


# (N, C, positives): odd sizes (not whole 8-byte words), one column, -1 entries, and class ids
# beyond 255 and 65535 (the radix-sort key type must not wrap them).
_CASES = {
    "3x3": (3, 3, [(0, 0), (0, 2), (1, 2), (2, 0), (2, 1), (2, 2)]),
    "one_column": (5, 1, [(0, 0), (2, 0), (3, 0)]),
    "odd_tail": (3, 7, [(0, 6), (1, 0), (2, 3), (2, 6)]),
    "c300": (4, 300, [(0, 299), (1, 0), (1, 256), (2, 255), (3, 43), (3, 299)]),
    "c70000": (3, 70_000, [(0, 65_537), (1, 1), (2, 0), (2, 69_999), (0, 4_464)]),
}


def _dense(num_images: int, num_classes: int, positives: list[tuple[int, int]]) -> np.ndarray:
    labels = np.zeros((num_images, num_classes), dtype=np.int8)
    labels[tuple(np.array(positives).T)] = 1
    return labels


@pytest.mark.filterwarnings("ignore:ClassAwareSampler")
@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize(
    "form",
    ["bool", "int8", "uint8", "int16", "int32", "int64", "float16", "float32", "float64", "tensor",
     "lists", "csr"],
)  # fmt: skip
def test_class_positive_lists_are_exact(case: str, form: str) -> None:
    num_images, num_classes, positives = _CASES[case]
    dense = _dense(num_images, num_classes, positives)
    if form in ("lists", "csr"):
        lists = _to_lists(dense)
        arg = lists if form == "lists" else _csr_pair(dense)
        sampler = ClassAwareSampler.from_class_lists(arg, num_classes=num_classes)
    else:
        if form not in ("bool", "uint8"):  # signed: every third negative becomes unknown (-1)
            dense[dense == 0] = np.where(np.arange((dense == 0).sum()) % 3 == 0, -1, 0)
        if form == "bool":
            sampler = ClassAwareSampler(dense == 1)
        elif form == "tensor":
            sampler = ClassAwareSampler(torch.from_numpy(dense.astype(np.int64)))
        else:
            sampler = ClassAwareSampler(dense.astype(form))
    assert sampler.num_images == num_images
    assert sampler.counts.shape == (num_classes,)
    assert sampler.counts.sum() == len(positives)
    assert _class_positives(sampler) == _expected_positives(num_images, positives)


def test_class_lists_of_arrays_and_tensors() -> None:
    # A list of two arrays is two images' lists, not a CSR pair (that must be a tuple).
    sampler = ClassAwareSampler.from_class_lists([np.array([0, 1]), np.array([1])])
    assert sampler.num_images == 2
    assert _class_positives(sampler) == {0: [0], 1: [0, 1]}
    mixed = [torch.tensor([0, 2]), np.array([1], dtype=np.int32), [2], torch.tensor([], dtype=int)]
    sampler = ClassAwareSampler.from_class_lists(mixed)
    assert sampler.num_images == 4
    assert _class_positives(sampler) == {0: [0], 1: [1], 2: [0, 2]}
    # The largest class index may equal num_classes - 1.
    sampler = ClassAwareSampler.from_class_lists([[1], [0]], num_classes=2)
    assert _class_positives(sampler) == {0: [1], 1: [0]}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.zeros((0, 3)), True),
        (np.array([[True, False]]), True),
        (np.array([[1, 0, -1]], dtype=np.int8), True),
        (np.array([[1, 1]], dtype=np.int64), True),
        (np.array([[1, -2]], dtype=np.int64), False),
        (np.array([[2, 0]], dtype=np.int16), False),
        (np.array([[1.0, 0.0, -1.0]]), True),
        (np.array([[-1.0, 0.0]], dtype=np.float32), True),
        (np.array([[0.0, 2.0]]), False),
        (np.array([[1.0, 0.5]]), False),
        (np.array([[1.0, -2.0]]), False),
        (np.array([[1.0, np.nan]]), False),
    ],
)
def test_is_label_matrix(values: np.ndarray, expected: bool) -> None:
    # The fast pre-check: True exactly for -1 / 0 / 1 matrices (else the full check runs).
    assert is_label_matrix(values) is expected


def test_narrowest_sort_key() -> None:
    # Class ids 0 .. C - 1 fit the key type, which is the narrowest that holds them.
    assert [narrowest(c) for c in (1, 256, 257, 65_536, 65_537)] == [
        np.uint8, np.uint8, np.uint16, np.uint16, np.int64,
    ]  # fmt: skip


def test_single_image() -> None:
    sampler = ClassAwareSampler(np.array([[1]]), 5)
    assert sampler.num_images == 1
    assert list(sampler) == [0] * 5


def test_defaults() -> None:
    sampler = ClassAwareSampler(np.eye(3, dtype=np.int64))
    assert (sampler.seed, sampler.epoch, sampler.num_replicas, sampler.rank) == (0, 0, 1, 0)
    assert (sampler.num_draws, sampler.power, sampler.mode) == (3, 0.0, "random")
    assert sampler.images_per_class == 3


@pytest.mark.parametrize(
    ("num_classes", "expected"),
    [
        (11, "10 of 11 classes have no known positive image and are never drawn: "
             "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"),
        (12, "11 of 12 classes have no known positive image and are never drawn: "
             "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10] ..."),
    ],
)  # fmt: skip
def test_empty_classes_message_shows_at_most_ten(num_classes: int, expected: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(f'`labels`: {expected}')}$"):
        ClassAwareSampler.from_class_lists([[0]], num_classes=num_classes, empty_classes="error")
    with pytest.warns(UserWarning, match=f"^{re.escape(f'ClassAwareSampler: {expected}')}$"):
        ClassAwareSampler.from_class_lists([[0]], num_classes=num_classes)


# ------------------------------------------------------------------------------ rates


def test_power0_classes_are_uniform(real_labels: np.ndarray) -> None:
    s = ClassAwareSampler(real_labels)
    n = 400_000
    slots, images = draw_random(np.random.default_rng(0), s._starts, s._counts, s._indices, n, 0.0)
    counts = np.bincount(slots, minlength=s._counts.size)
    assert _chi2_p(counts, np.ones(counts.size)) > P_MIN
    # Max deviation: every class, including the smallest tail class, at rate 1/C.
    expected = n / counts.size
    assert np.abs(counts - expected).max() < Z_MAX * math.sqrt(expected)
    # Each drawn image is a positive of its drawn class.
    assert (real_labels[images, s._drawable[slots]] == 1).all()


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0, -0.5])
def test_image_rates_match_the_formula(real_labels: np.ndarray, power: float) -> None:
    n = 300_000
    drawn = np.fromiter(ClassAwareSampler(real_labels, n, power=power, seed=5), dtype=np.int64)
    observed = np.bincount(drawn, minlength=real_labels.shape[0])
    q = _image_probabilities(real_labels, power)
    assert observed[q == 0].sum() == 0  # images with no positive are never drawn
    assert _chi2_p(observed[q > 0], q[q > 0]) > P_MIN
    # Every class appears (as a label of the drawn images) at its promised rate sum_{i in k} q_i.
    present = (real_labels[drawn] == 1).sum(axis=0)
    rate = (real_labels == 1).T @ q
    sd = np.sqrt(n * rate * (1 - rate))
    assert (np.abs(present - n * rate) < Z_MAX * sd).all()


def test_power1_is_label_count_weighted_instance_sampling(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    label_count = (labels == 1).sum(axis=1)
    promised = label_count / label_count.sum()  # the documented rate |L_i| / sum_k n_k
    np.testing.assert_allclose(_image_probabilities(labels, 1.0), promised, rtol=1e-12)
    n = 300_000
    drawn = np.fromiter(ClassAwareSampler(labels, n, power=1.0, seed=2), dtype=np.int64)
    assert _chi2_p(np.bincount(drawn, minlength=labels.shape[0]), promised) > P_MIN


def test_tail_class_rate_power0(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels, split = voc_lt
    cow = split["classes"].index("cow")
    assert split["class_freq"][cow] == 4
    n = 200_000
    drawn = np.fromiter(ClassAwareSampler(labels, n, seed=9), dtype=np.int64)
    cow_images = np.flatnonzero(labels[:, cow] == 1)
    q = _image_probabilities(labels, 0.0)
    # Each cow image: drawn through cow at 1/(20 * 4), plus through its other classes.
    assert (q[cow_images] >= 1 / 80).all()
    hits = np.bincount(drawn, minlength=labels.shape[0])[cow_images]
    sd = np.sqrt(n * q[cow_images] * (1 - q[cow_images]))
    assert (np.abs(hits - n * q[cow_images]) < Z_MAX * sd).all()


def test_progressive_power_schedule(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    schedule = ClassAwareSampler(labels, power=lambda e: max(0.0, 1 - e / 4), seed=4)
    for epoch, power in [(0, 1.0), (2, 0.5), (4, 0.0), (7, 0.0)]:
        schedule.set_epoch(epoch)
        fixed = ClassAwareSampler(labels, power=power, seed=4)
        fixed.set_epoch(epoch)
        assert list(schedule) == list(fixed)


# ----------------------------------------------------------------------------- cycle mode


@pytest.mark.parametrize(("name", "expected"), [("voc_lt", 3875), ("coco_lt", 22560)])
def test_db_epoch_length(request: pytest.FixtureRequest, name: str, expected: int) -> None:
    labels = request.getfixturevalue(name)[0]
    assert len(ClassAwareSampler(labels, "db", mode="cycle")) == expected  # Wu et al. (2020)


@pytest.mark.parametrize(("per_class", "n"), [(3, 3875), (1, 1000), (5, 9999)])
def test_cycle_structure(voc_lt: tuple[np.ndarray, dict], per_class: int, n: int) -> None:
    labels = voc_lt[0]
    s = ClassAwareSampler(labels)
    slots, images = draw_cycle(
        np.random.default_rng(1), s._starts, s._counts, s._indices, n, per_class
    )
    num_classes = s._counts.size
    assert slots.size == images.size == n
    assert (labels[images, s._drawable[slots]] == 1).all()
    visits = slots[::per_class]
    # A visit is per_class consecutive draws of one class.
    np.testing.assert_array_equal(slots, np.repeat(visits, per_class)[:n])
    # The class order is a sequence of permutations (a shuffled cycle, reshuffled at each pass).
    full = visits.size // num_classes * num_classes
    rounds = visits[:full].reshape(-1, num_classes)
    assert (np.sort(rounds, axis=1) == np.arange(num_classes)).all()
    assert len({tuple(r) for r in rounds}) > 1
    # Each class's images, in order, are passes through a permutation of its positives.
    for slot in range(num_classes):
        stream = images[slots == slot]
        members = np.flatnonzero(labels[:, s._drawable[slot]] == 1)
        size = members.size
        for start in range(0, stream.size, size):
            chunk = stream[start : start + size]
            assert np.unique(chunk).size == chunk.size
            assert np.isin(chunk, members).all()


# ------------------------------------------------------------------- order and structure
#
# Single-label data, so that each drawn image tells which class was drawn.


def _single_label(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels of images in class blocks (``counts[k]`` images of class ``k``) and their classes."""
    classes = np.repeat(np.arange(len(counts)), counts)
    return np.eye(len(counts), dtype=np.int64)[classes], classes


LONG_TAIL = [40, 25, 12, 9, 6, 5, 4, 3]


@pytest.mark.parametrize("power", [0.0, 1.0])
def test_random_mode_draws_are_independent_in_order(power: float) -> None:
    # I.i.d. draws: two consecutive draws share a class with probability sum_k P(k)^2, so a batch
    # mixes classes as the sampling law says, however the draws were produced.
    labels, classes = _single_label(LONG_TAIL)
    n = 20_000
    drawn = classes[list(ClassAwareSampler(labels, n, power=power, seed=3))]
    p_class = np.asarray(LONG_TAIL, dtype=np.float64) ** power
    p_class /= p_class.sum()
    same = p_class @ p_class
    observed = (drawn[1:] == drawn[:-1]).mean()
    # The n - 1 pair indicators are 1-dependent; var < 3 * same / (n - 1) bounds their mean's.
    assert abs(observed - same) < Z_MAX * math.sqrt(3 * same / (n - 1))
    # ... and no class is drawn in long runs: the longest run is that of i.i.d. draws.
    run_ends = np.flatnonzero(np.diff(drawn)) + 1
    longest = np.diff(np.concatenate([[0], run_ends, [n]])).max()
    assert longest < math.log(n * 1e5) / math.log(1 / p_class.max())


@pytest.mark.parametrize(("power", "block"), [(400.0, 0), (-400.0, len(LONG_TAIL) - 1)])
def test_extreme_powers_draw_one_class(power: float, block: int) -> None:
    # n_k ** 400 overflows a float64: the weights are taken relative to the largest in log space.
    # Class 0 (40 images) then outweighs class 1 (25) by (40 / 25) ** 400; the smallest class (3)
    # wins at -400 by (4 / 3) ** 400.
    labels, classes = _single_label(LONG_TAIL)
    drawn = np.array(list(ClassAwareSampler(labels, 2000, power=power, seed=0)))
    assert set(drawn.tolist()) == set(np.flatnonzero(classes == block).tolist())


@pytest.mark.parametrize("per_class", [1, 2, 5])
def test_cycle_visits_take_images_per_class_consecutive_draws(per_class: int) -> None:
    labels, classes = _single_label(LONG_TAIL)
    num_classes, n = len(LONG_TAIL), 7 * len(LONG_TAIL) * per_class + 3
    sampler = ClassAwareSampler(labels, n, mode="cycle", images_per_class=per_class, seed=1)
    drawn = np.array(list(sampler))
    assert drawn.size == n
    drawn_class = classes[drawn]
    visits = drawn_class[::per_class]
    # A visit is `per_class` consecutive draws of one class (the last visit may be cut short).
    np.testing.assert_array_equal(drawn_class, np.repeat(visits, per_class)[:n])
    # Visits run in passes over all classes, each pass a permutation, and the passes differ.
    full = visits.size // num_classes * num_classes
    passes = visits[:full].reshape(-1, num_classes)
    np.testing.assert_array_equal(np.sort(passes, axis=1), np.tile(np.arange(num_classes), (7, 1)))
    assert len({tuple(p) for p in passes}) > 1


def _class_streams(drawn: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    return [drawn[classes[drawn] == k] for k in range(classes.max() + 1)]


def test_cycle_class_streams_are_fresh_permutations() -> None:
    counts = [12, 12, 12, 7, 5]
    labels, classes = _single_label(counts)
    first = np.cumsum([0, *counts[:-1]])  # each class's first image index
    sampler = ClassAwareSampler(labels, 600, mode="cycle", seed=5)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        streams = _class_streams(np.array(list(sampler)), classes)
        for k, stream in enumerate(streams):
            # Pass after pass through the class's images, each pass a permutation of them.
            passes = stream[: stream.size // counts[k] * counts[k]].reshape(-1, counts[k])
            members = np.arange(first[k], first[k] + counts[k])
            np.testing.assert_array_equal(
                np.sort(passes, axis=1), np.broadcast_to(members, passes.shape)
            )
            # Shuffled, not in index order, and reshuffled at every pass (a correct sampler
            # fails either with probability about 1 / 12!).
            if counts[k] == 12:
                assert not (np.diff(passes[0]) > 0).all()
                assert len({tuple(p) for p in passes}) == len(passes)
        epochs.append(streams)
    # The three classes of 12 images are not walked in one shared order ...
    orders = {tuple(np.argsort(s[:12])) for s in epochs[0][:3]}
    assert len(orders) == 3
    # ... and each epoch walks them anew.
    for k in range(3):
        assert not np.array_equal(epochs[0][k][:12], epochs[1][k][:12])


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("mode", ["random", "cycle"])
def test_order_is_a_function_of_seed_and_epoch(voc_lt: tuple[np.ndarray, dict], mode: str) -> None:
    labels = voc_lt[0]
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 -- the global RNG must not matter
    first = ClassAwareSampler(labels, mode=mode, seed=7)
    first.set_epoch(3)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    order = list(first)
    assert torch.equal(torch.get_rng_state(), torch_state)  # and left untouched
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    again = ClassAwareSampler(labels, mode=mode, seed=7)
    again.set_epoch(3)
    assert list(again) == order
    assert list(again) == order  # iterating twice in one epoch repeats it
    again.set_epoch(4)
    assert list(again) != order
    other_seed = ClassAwareSampler(labels, mode=mode, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != order


# -------------------------------------------------------------------------------- shards


@pytest.mark.parametrize("mode", ["random", "cycle"])
@pytest.mark.parametrize(("num_draws", "replicas"), [(1142, 2), (1001, 3), (7, 4), (2, 5)])
def test_simulated_ranks_partition_the_epoch(
    voc_lt: tuple[np.ndarray, dict], mode: str, num_draws: int, replicas: int
) -> None:
    labels = voc_lt[0]

    def order(**kw: int) -> list[int]:
        s = ClassAwareSampler(labels, num_draws, mode=mode, seed=11, **kw)
        s.set_epoch(2)
        return list(s)

    global_order = order(num_replicas=1, rank=0)
    assert len(global_order) == num_draws
    total = math.ceil(num_draws / replicas) * replicas
    padded = [global_order[i % num_draws] for i in range(total)]  # wrap, as DistributedSampler
    shards = [order(num_replicas=replicas, rank=r) for r in range(replicas)]
    assert {len(s) for s in shards} == {total // replicas}
    for r, shard in enumerate(shards):
        assert shard == padded[r::replicas]  # positions r, r + R, ...: disjoint, cover the epoch
    interleaved = [shards[p % replicas][p // replicas] for p in range(total)]
    assert interleaved[:num_draws] == global_order


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_defaults_follow_the_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = np.eye(4, dtype=np.int64)
    global_order = list(ClassAwareSampler(labels, 10, seed=2, num_replicas=1, rank=0))
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    sampler = ClassAwareSampler(labels, 10, seed=2)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (3, 2, 4)
    padded = [global_order[i % 10] for i in range(12)]
    assert list(sampler) == padded[2::3]
    explicit = ClassAwareSampler(labels, 10, seed=2, num_replicas=2, rank=1)
    assert (explicit.num_replicas, explicit.rank) == (2, 1)


# ------------------------------------------------------------------ the names of an epoch's counts


def test_counts_under_ddp_are_what_a_distributed_sampler_user_expects() -> None:
    # Rank 1 of 3 with 1001 draws: DistributedSampler(drop_last=False) over a dataset of 1001
    # items is the reference for the padded total and the per-rank count.
    labels, draws = np.eye(7, dtype=np.int64), 1001
    sampler = ClassAwareSampler(labels, draws, num_replicas=3, rank=1)
    reference = DistributedSampler(range(draws), num_replicas=3, rank=1)
    assert sampler.num_draws == draws  # all replicas, as RandomSampler(num_samples=...)
    assert sampler.total_size == reference.total_size == 1002
    assert sampler.num_draws_per_rank == reference.num_samples == len(reference) == 334
    assert len(sampler) == sampler.num_draws_per_rank == len(list(sampler))


def test_num_samples_keyword_is_a_deprecated_name_of_num_draws() -> None:
    labels = np.eye(5, dtype=np.int64)
    expected = ClassAwareSampler(labels, num_draws=11, seed=4, num_replicas=3, rank=1)
    match = "`num_samples` is deprecated .* use `num_draws`"
    with pytest.warns(FutureWarning, match=match) as record:
        old = ClassAwareSampler(labels, num_samples=11, seed=4, num_replicas=3, rank=1)
    assert record[0].filename == __file__  # points at the caller
    with pytest.warns(FutureWarning, match=match) as record:
        lists = ClassAwareSampler.from_class_lists([[0], [1], [2], [3], [4]], num_samples=11)
    assert record[0].filename == __file__
    assert (old.num_draws, old.total_size, len(old)) == (11, 12, 4)
    assert list(old) == list(expected)
    assert lists.num_draws == 11
    with pytest.raises(TypeError, match=r"got both `num_samples` \(deprecated\) and `num_draws`"):
        ClassAwareSampler(labels, num_samples=11, num_draws=11)


def test_num_samples_attribute_is_a_deprecated_name_of_num_draws() -> None:
    # It keeps its former value, the draws over all replicas (not len(sampler), per rank).
    sampler = ClassAwareSampler(np.eye(5, dtype=np.int64), 11, num_replicas=3, rank=1)
    with pytest.warns(FutureWarning, match="`num_samples` is deprecated .* use `num_draws`") as w:
        assert sampler.num_samples == 11 != len(sampler)
    assert w[0].filename == __file__
    with pytest.warns(FutureWarning, match="use `num_draws`"):
        sampler.num_samples = 5  # as before the rename: the draws of the next epochs
    rebuilt = ClassAwareSampler(np.eye(5, dtype=np.int64), 5, num_replicas=3, rank=1)
    assert (sampler.num_draws, sampler.total_size, len(sampler)) == (5, 6, 2)
    assert list(sampler) == list(rebuilt)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gloo_worker(rank: int, world: int, port: int, labels: np.ndarray, out: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        balanced = ClassAwareSampler(labels, seed=3)  # num_replicas / rank from the group
        balanced.set_epoch(1)
        uniform = DistributedSampler(range(labels.shape[0]), seed=3)
        paired = PairedSampler(uniform, ClassAwareSampler(labels, "db", mode="cycle"))
        paired.set_epoch(1)
        pairs = np.array(list(paired))
        # every rank must run the same number of steps: compare through the process group
        sizes = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([len(pairs)]))
        np.savez(
            Path(out) / f"rank{rank}.npz",
            balanced=np.array(list(balanced)),
            meta=np.array([balanced.num_replicas, balanced.rank]),
            pairs=pairs,
            sizes=torch.cat(sizes).numpy(),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_process_gloo_run(voc_lt: tuple[np.ndarray, dict], tmp_path: Path) -> None:
    labels = voc_lt[0]
    mp.spawn(_gloo_worker, args=(2, _free_port(), labels, str(tmp_path)), nprocs=2, join=True)
    results = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    reference = ClassAwareSampler(labels, seed=3, num_replicas=1, rank=0)
    reference.set_epoch(1)
    global_order = np.array(list(reference))
    padded = np.resize(global_order, 1142)
    for r, res in enumerate(results):
        np.testing.assert_array_equal(res["meta"], [2, r])
        np.testing.assert_array_equal(res["balanced"], padded[r::2])
        np.testing.assert_array_equal(res["sizes"], [3875 // 2 + 1] * 2)
        assert res["pairs"].shape == (1938, 2)
    # The uniform side's first pass is a DistributedSampler epoch: disjoint, covering all images.
    first_pass = np.concatenate([res["pairs"][:571, 0] for res in results])
    np.testing.assert_array_equal(np.sort(first_pass), np.arange(1142))


# ---------------------------------------------------------------------------- paired


@pytest.mark.parametrize(("length", "expected"), [("balanced", 10), ("uniform", 4), ("min", 4)])
def test_paired_length_rules_and_wrapping(length: str, expected: int) -> None:
    labels = np.eye(4, dtype=np.int64)
    uniform = ClassAwareSampler(labels, 4, power=1.0, seed=1)  # any sampler with set_epoch
    balanced = ClassAwareSampler(labels, 10, seed=2)
    paired = PairedSampler(uniform, balanced, length=length)  # type: ignore[arg-type]
    paired.set_epoch(3)
    assert uniform.epoch == balanced.epoch == 3
    pairs = list(paired)
    assert len(pairs) == len(paired) == expected

    def passes(sampler: ClassAwareSampler, n: int) -> list[int]:
        m = math.ceil(n / len(sampler))
        out: list[int] = []
        for p in range(m):  # the documented rule: pass p of epoch e runs at epoch e * m + p
            sampler.set_epoch(3 * m + p)
            out += list(sampler)
        return out[:n]

    assert [u for u, _ in pairs] == passes(uniform, expected)
    assert [r for _, r in pairs] == passes(balanced, expected)


def test_paired_with_random_sampler_wraps_with_fresh_permutations() -> None:
    uniform = RandomSampler(range(5), generator=torch.Generator().manual_seed(0))
    paired = PairedSampler(uniform, ClassAwareSampler(np.eye(5, dtype=np.int64), 15))
    paired.set_epoch(1)  # no set_epoch on RandomSampler: forwarded only where it exists
    u = [i for i, _ in paired]
    assert len(u) == 15
    chunks = [u[i : i + 5] for i in range(0, 15, 5)]
    assert all(sorted(c) == list(range(5)) for c in chunks)
    assert len({tuple(c) for c in chunks}) > 1


@pytest.mark.parametrize("rank", [0, 1])
def test_paired_simulated_ranks_have_equal_length(
    voc_lt: tuple[np.ndarray, dict], rank: int
) -> None:
    labels = voc_lt[0]
    uniform = DistributedSampler(range(1142), num_replicas=3, rank=rank, seed=0)
    balanced = ClassAwareSampler(labels, "db", mode="cycle", num_replicas=3, rank=rank)
    paired = PairedSampler(uniform, balanced)
    assert len(paired) == len(list(paired)) == math.ceil(3875 / 3)


class _IndexedLabels(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Items (x, y) with x = the index, so that the batch says which images it holds."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(i), self.labels[i]


def test_paired_dataloader_with_workers(voc_lt: tuple[np.ndarray, dict]) -> None:
    labels = voc_lt[0]
    data = _IndexedLabels(labels)
    uniform = RandomSampler(data, generator=torch.Generator().manual_seed(0))
    paired = PairedSampler(uniform, ClassAwareSampler(labels, 500, seed=0), length="balanced")
    loader = DataLoader(
        PairedDataset(data),
        sampler=paired,
        batch_size=64,
        num_workers=2,
        pin_memory=torch.cuda.is_available(),  # pinning needs CUDA; CPU runs leave it off
    )
    seen_u, seen_r = [], []
    for (x_u, y_u), (x_r, y_r) in loader:
        assert x_u.shape == x_r.shape
        assert y_u.shape == y_r.shape == (len(x_u), 20)
        assert torch.equal(y_u, data.labels[x_u])
        assert torch.equal(y_r, data.labels[x_r])
        assert bool((y_r == 1).any(dim=1).all())  # the re-balanced side: always a positive
        seen_u += x_u.tolist()
        seen_r += x_r.tolist()
    assert len(loader) == 8
    assert len(seen_u) == 500
    assert seen_r == list(ClassAwareSampler(labels, 500, seed=0))
    assert len(set(seen_u)) == 500  # the uniform side is a permutation (no wrap at 500 < 1142)


# ----------------------------------------------------------------------- empty and bad input


def test_empty_class_warns_once_and_is_never_drawn() -> None:
    labels = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]])
    with pytest.warns(UserWarning, match=r"1 of 3 classes have no known positive image") as rec:
        sampler = ClassAwareSampler(labels, 1000)
    assert len([w for w in rec if issubclass(w.category, UserWarning)]) == 1
    assert rec[0].filename == __file__  # the warning points at the caller
    drawn = set(sampler)
    assert drawn == {0, 1, 2}  # image 3 has no positive: never drawn
    assert sampler.num_images == 4  # ... but counts in N (the default epoch length)


def test_empty_class_error_mode() -> None:
    with pytest.raises(
        ValueError, match=r"`labels`: 1 of 3 classes have no known positive .*\[1\]"
    ):
        ClassAwareSampler(np.array([[1, 0, 0], [0, -1, 1]]), empty_classes="error")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.full((5, 3), -1), r"at least one known positive label, got N=5 images and C=3"),
        (np.zeros((0, 4), dtype=np.int64), r"at least one known positive label, got N=0"),
        (np.zeros((3, 2)), r"at least one known positive label"),
    ],
)
def test_no_positive_at_all(labels: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClassAwareSampler(labels)


@pytest.mark.parametrize(
    ("class_lists", "match"),
    [
        ([], r"at least one known positive label, got N=0"),
        ([[], []], r"at least one known positive label, got N=2 images and C=0"),
    ],
)
def test_no_positive_in_class_lists(class_lists: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClassAwareSampler.from_class_lists(class_lists)


def test_nested_lists_are_ambiguous_and_refused() -> None:
    # A nested list of 0 / 1 rows read as class lists would count classes 0 and 1 in every row.
    dense = [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(TypeError, match=r"`labels` must be an \(N, C\) numpy.*from_class_lists"):
        ClassAwareSampler(dense)
    assert ClassAwareSampler(np.asarray(dense)).counts.tolist() == [2, 1, 1]
    with pytest.raises(ValueError, match=r"`class_lists` lists class \d twice"):
        ClassAwareSampler.from_class_lists(dense)


@pytest.mark.parametrize(
    ("class_lists", "kwargs", "error", "match"),
    [
        ("abc", {}, TypeError, r"`class_lists` must be a list of per-image class-index lists"),
        ([1, 2], {}, TypeError, r"`class_lists` must hold one sequence .* type int"),
        ((np.array([0, 1]), np.array([0.5])), {}, TypeError, r"`class_lists indices` must hold i"),
        (
            (np.array([1, 2]), np.array([0])),
            {},
            ValueError,
            r"indptr of length N \+ 1 starting at 0",
        ),
        ((np.array([[0, 1]]), np.array([0])), {}, ValueError, r"1-D indptr.*shape \(1, 2\)"),
        ((np.array([0, 2]), np.array([0])), {}, ValueError, r"indptr\[-1\] = 2 and 1 indices"),
        ((np.array([0, 2, 1, 3]), np.array([0, 1, 2])), {}, ValueError, r"non-decreasing"),
        ([[0, -1]], {}, ValueError, r"class indices must be non-negative, got -1"),
        ([[0, 4]], {"num_classes": 3}, ValueError, r"must be < num_classes=3, got 4"),
        ([[0, 2, 2]], {}, ValueError, r"lists class 2 twice for image 0"),
        ([[0, 1.5]], {}, TypeError, r"`class_lists` must hold integers, got dtype float64"),
        ([[True]], {}, TypeError, r"`class_lists` must hold integers, got dtype bool"),
        # A tensor in the lists is read by value (tolist), never handed to numpy as it is.
        (
            [torch.tensor([0.0], requires_grad=True)],
            {},
            TypeError,
            r"`class_lists` must hold integers, got dtype float64",
        ),
        ([[1, 1]], {}, ValueError, r"lists class 1 twice for image 0"),  # class 0 has none
        (
            (np.array([0.0, 1.0]), np.array([0])),
            {},
            TypeError,
            r"`class_lists indptr` must hold integers, got dtype float64",
        ),
        (
            (torch.tensor([0.0, 1.0], requires_grad=True), torch.tensor([0])),
            {},
            TypeError,
            r"`class_lists indptr` must hold integers, got dtype float32",
        ),
        (
            (np.array([0, 1], dtype=object), np.array([0])),
            {},
            TypeError,
            r"`class_lists indptr` must be a numeric array, got an array of dtype object",
        ),
    ],
)
def test_bad_class_lists(class_lists: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ClassAwareSampler.from_class_lists(class_lists, **kwargs)


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "match"),
    [
        (
            "abc",
            {},
            TypeError,
            r"`labels` must be an \(N, C\) numpy.ndarray, torch.Tensor \(dense or sparse\), scipy",
        ),
        ({0: [1]}, {}, TypeError, r"got dict"),
        ([[0, 1]], {}, TypeError, r"got list; .*from_class_lists"),
        (
            np.array([[0, 255]], dtype=np.uint8),
            {},
            ValueError,
            r"`labels` must contain only values in \{0, 1, -1\}, got 255 \(an unsigned dtype",
        ),
        (np.ones((2, 3, 4)), {}, ValueError, r"`labels` must be 2-D of shape \(N, C\), got 3-D"),
        (np.array([[0, 2], [1, 0]]), {}, ValueError, r"`labels` must contain only .*, got 2$"),
        (np.array([[1, -2], [1, 0]]), {}, ValueError, r"`labels` must contain only .*, got -2$"),
        (np.array([[0.0, 2.0]]), {}, ValueError, r"`labels` must contain only .*, got 2$"),
        (np.array([[1.0, 0.5]]), {}, ValueError, r"`labels` must contain only .*, got 0.5$"),
        (np.array([[1.0, -2.0]]), {}, ValueError, r"`labels` must contain only .*, got -2$"),
        (np.eye(3), {"num_classes": 4}, ValueError, r"must have 4 columns \(num_classes\)"),
        (
            np.array([[1], [0]], dtype=object),
            {},
            TypeError,
            r"`labels` must be a numeric array, got an array of dtype object",
        ),
        (np.eye(3), {"power": float("nan")}, ValueError, r"`power` must be a finite real number"),
        (np.eye(3), {"power": "1"}, TypeError, r"`power` must be a real number, got str '1'"),
        (np.eye(3), {"mode": "cycle", "power": 0.5}, ValueError, r"`power` must be 0, got 0.5"),
        (np.eye(3), {"mode": "cycle", "power": abs}, ValueError, r"cannot be a schedule"),
        (np.eye(3), {"mode": "fast"}, ValueError, r"`mode` must be one of 'random', 'cycle', got"),
        (np.eye(3), {"images_per_class": 2}, ValueError, r"applies only to mode='cycle'"),
        (
            np.eye(3),
            {"mode": "cycle", "images_per_class": 0},
            ValueError,
            r"`images_per_class` must be an integer >= 1, got 0",
        ),
        (
            np.eye(3),
            {"empty_classes": "skip"},
            ValueError,
            r"`empty_classes` must be one of 'warn', 'error', got str 'skip'",
        ),
        (
            np.eye(3),
            {"num_draws": 0},
            ValueError,
            r"`num_draws` must be an integer >= 1, got 0",
        ),
        (
            np.eye(3),
            {"num_draws": 2.5},
            TypeError,
            r"`num_draws` must be an integer, got float",
        ),
        (np.eye(3), {"num_draws": "all"}, ValueError, r"`num_draws` must be one of 'db', got"),
        (
            np.eye(3),
            {"num_draws": True},
            TypeError,
            r"`num_draws` must be an integer, got bool",
        ),
        (np.eye(3), {"seed": -1}, ValueError, r"`seed` must be an integer >= 0, got -1"),
        (np.eye(3), {"num_classes": 0}, ValueError, r"`num_classes` must be an integer >= 1, got"),
        (np.eye(3), {"num_replicas": 0}, ValueError, r"`num_replicas` must be an integer >= 1"),
        (np.eye(3), {"num_replicas": 2.0}, TypeError, r"`num_replicas` must be an integer, got"),
        (
            np.eye(3),
            {"num_replicas": 2, "rank": 2},
            ValueError,
            r"`rank` must be an integer in \[0, 1\]",
        ),
        (np.eye(3), {"rank": -1}, ValueError, r"`rank` must be an integer in \[0, 0\], got -1"),
    ],
)
def test_bad_sampler_input(labels: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ClassAwareSampler(labels, **kwargs)


def test_bad_epoch_and_scheduled_power() -> None:
    sampler = ClassAwareSampler(np.eye(3), power=lambda e: float("inf"))
    with pytest.raises(ValueError, match=r"`epoch` must be an integer >= 0, got -1"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match=r"`power\(epoch\)` must be a finite real number, got inf"):
        list(sampler)


@pytest.mark.parametrize(
    ("uniform", "balanced", "kwargs", "error", "match"),
    [
        (iter([1]), SequentialSampler(range(2)), {}, TypeError, r"`uniform` must be a sampler wi"),
        (SequentialSampler(range(0)), SequentialSampler(range(2)), {}, ValueError, r"`uniform`.*0"),
        (SequentialSampler(range(2)), SequentialSampler(range(0)), {}, ValueError, r"`balanced`"),
        (
            SequentialSampler(range(2)),
            SequentialSampler(range(2)),
            {"length": "max"},
            ValueError,
            r"`length` must be one of 'balanced', 'uniform', 'min', got str 'max'",
        ),
    ],
)
def test_bad_paired_input(
    uniform: object, balanced: object, kwargs: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        PairedSampler(uniform, balanced, **kwargs)  # type: ignore[arg-type]


def test_paired_bad_epoch() -> None:
    paired = PairedSampler(SequentialSampler(range(2)), SequentialSampler(range(2)))
    with pytest.raises(ValueError, match=r"`epoch` must be an integer >= 0, got -2"):
        paired.set_epoch(-2)


class _Declared(Sampler[int]):
    """A sampler whose len() and number of yielded indices are set independently."""

    def __init__(self, length: int, yields: int) -> None:
        self.length, self.yields = length, yields

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.yields))


@pytest.mark.parametrize(
    ("uniform", "balanced", "match"),
    [
        (_Declared(2, 3), SequentialSampler(range(2)), r"`uniform` yields more .* len\(\) = 2$"),
        # the balanced side ends with the epoch: its extra index is found by the strict zip
        (SequentialSampler(range(2)), _Declared(2, 3), r"`balanced` yields more .* len\(\) = 2$"),
        (_Declared(3, 2), SequentialSampler(range(3)), r"`uniform` yielded 2 .* len\(\) is 3$"),
        (SequentialSampler(range(3)), _Declared(3, 2), r"`balanced` yielded 2 .* len\(\) is 3$"),
    ],
)
def test_paired_sampler_whose_length_lies(
    uniform: Sampler[int], balanced: Sampler[int], match: str
) -> None:
    paired = PairedSampler(uniform, balanced)
    with pytest.raises(ValueError, match=match):
        list(paired)


def test_paired_lengths_are_checked_at_use() -> None:
    uniform, balanced = _Declared(2, 2), _Declared(2, 2)
    paired = PairedSampler(uniform, balanced)
    pairs = iter(paired)
    uniform.length = -1  # broken after the pairing was built
    bad = r"must have a __len__ giving a non-negative int"
    with pytest.raises(TypeError, match=f"^`uniform` {bad}"):
        next(pairs)
    with pytest.raises(TypeError, match=f"^`uniform` {bad}"):
        len(paired)
    uniform.length, balanced.length = 2, -1
    with pytest.raises(TypeError, match=f"^`balanced` {bad}"):
        len(paired)


def test_paired_dataset_indexing() -> None:
    data = TensorDataset(10 * torch.arange(5.0), torch.tensor([[0], [1], [1], [0], [1]]))
    paired = PairedDataset(data)
    assert len(paired) == 5
    (x_u, y_u), (x_r, y_r) = paired[(1, 3)]
    assert (x_u.item(), y_u.tolist(), x_r.item(), y_r.tolist()) == (10.0, [1], 30.0, [0])
    (x_u, _), (x_r, _) = paired[[4, 4]]  # type: ignore[index]
    assert (x_u.item(), x_r.item()) == (40.0, 40.0)


class _NoLength:
    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize(("pair", "seen"), [(2, "int"), ((1, 2, 3), "tuple"), ([1], "list")])
def test_paired_dataset_bad_input(pair: object, seen: str) -> None:
    paired = PairedDataset(TensorDataset(torch.arange(5.0)))
    with pytest.raises(TypeError, match=rf"^`pair` must be an index pair \(i_u, i_r\), .* {seen}$"):
        paired[pair]  # type: ignore[index]
    assert PairedDataset(_NoLength())[(1, 2)] == (1, 2)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^`dataset` must be a dataset with __len__, got _NoLength"
    ):
        len(PairedDataset(_NoLength()))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^`dataset` must be a map-style dataset .* got int$"):
        PairedDataset(5)  # type: ignore[arg-type]
