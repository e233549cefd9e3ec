"""Deferred re-weighting (DRW) and deferred re-sampling (DRS): exact switch, determinism, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ltml


def _labels(seed: int = 0, n: int = 60, c: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, c, generator=g) < torch.linspace(0.6, 0.05, c)).long()
    labels[0] = 1  # every class has a positive
    labels[5, 2] = -1
    return labels


# ------------------------------------------------------------------------------------------------
# DRW
# ------------------------------------------------------------------------------------------------


def _literal_weighted_bce(logits, targets, weight):
    total, count = 0.0, 0
    for i in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            t = int(targets[i, k])
            if t == -1:
                continue
            p = 1 / (1 + np.exp(-float(logits[i, k])))
            total += -float(weight[k]) * (t * np.log(p) + (1 - t) * np.log(1 - p))
            count += 1
    return total / count


def test_drw_switches_exactly_at_the_start_epoch():
    weight = torch.tensor([0.2, 0.5, 1.0, 1.3, 2.0])
    loss = ltml.DeferredReweightedBCE(weight, start_epoch=3)
    logits = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    targets = _labels(n=7)
    for epoch in range(6):
        loss.set_epoch(epoch)
        w = weight if epoch >= 3 else torch.ones(5)
        assert loss.active == (epoch >= 3)
        expected = _literal_weighted_bce(logits, targets, w)
        assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-12)


def test_drw_gradient_is_the_weighted_one():
    weight = torch.tensor([0.5, 3.0])
    loss = ltml.DeferredReweightedBCE(weight, start_epoch=1)
    logits = torch.tensor([[0.3, -1.2]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[1, 1]])
    loss.set_epoch(1)
    loss(logits, targets).backward()
    sigma = torch.sigmoid(logits.detach())
    assert torch.allclose(logits.grad, weight.double() * (sigma - 1) / 2)


def test_drw_epoch_travels_with_the_state_dict():
    loss = ltml.DeferredReweightedBCE(torch.tensor([1.0, 4.0]), start_epoch=2)
    loss.set_epoch(5)
    resumed = ltml.DeferredReweightedBCE(torch.tensor([1.0, 4.0]), start_epoch=2)
    assert not resumed.active
    resumed.load_state_dict(loss.state_dict())
    assert (resumed.epoch, resumed.active) == (5, True)
    logits, targets = torch.randn(3, 2), torch.tensor([[1, 0], [0, 1], [1, 1]])
    assert torch.equal(resumed(logits, targets), loss(logits, targets))


@pytest.mark.parametrize(
    ("weight", "start", "match"),
    [
        ([[1.0, 2.0]], 0, "`weight` must be a non-empty 1-D vector"),
        ([], 0, "`weight` must be a non-empty 1-D vector"),
        ([1.0, -2.0], 0, "`weight` must be non-negative, got -2.0"),
        ([1.0, float("nan")], 0, "`weight` must be finite"),
        ([1.0, 2.0], -1, r"`start_epoch` must be an integer .*got -1"),
    ],
)
def test_drw_bad_input(weight, start, match):
    with pytest.raises(ValueError, match=match):
        ltml.DeferredReweightedBCE(torch.tensor(weight), start_epoch=start)


def test_drw_bad_epoch():
    with pytest.raises(ValueError, match=r"`epoch` must be an integer .*got -2"):
        ltml.DeferredReweightedBCE(torch.ones(2), 1).set_epoch(-2)


# ------------------------------------------------------------------------------------------------
# DRS
# ------------------------------------------------------------------------------------------------


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("mode", ["random", "cycle"])
def test_drs_is_uniform_then_exactly_class_aware(mode):
    labels = _labels()
    drs = ltml.DeferredClassAwareSampler(labels, start_epoch=2, mode=mode, seed=7)
    reference = ltml.ClassAwareSampler(labels, mode=mode, seed=7)
    for epoch in range(2):
        assert sorted(_epoch(drs, epoch)) == list(range(60))  # each image once
        assert not drs.active
    for epoch in range(2, 5):
        assert _epoch(drs, epoch) == _epoch(reference, epoch)
        assert drs.active
    assert len(drs) == len(reference) == 60


def test_drs_uniform_phase_is_not_label_count_weighted():
    # ClassAwareSampler(power=1) draws an image with m labels m times as often; the uniform phase
    # draws every image equally: images without any positive label included.
    labels = torch.zeros(40, 3, dtype=torch.int64)
    labels[:10] = 1  # 10 images with 3 labels
    labels[10:20, 0] = 1  # 10 with 1 label; 20 with none
    drs = ltml.DeferredClassAwareSampler(labels, start_epoch=1, num_draws=4000)
    counts = np.bincount(_epoch(drs, 0), minlength=40)
    assert counts.min() == counts.max() == 100  # 100 independent permutations
    power1 = np.bincount(list(ltml.ClassAwareSampler(labels, 4000, power=1)), minlength=40)
    assert power1[:10].mean() > 2.5 * power1[10:20].mean()
    assert power1[20:].sum() == 0


def test_drs_order_is_a_function_of_seed_and_epoch_and_resumes():
    labels = _labels()
    straight = ltml.DeferredClassAwareSampler(labels, start_epoch=2, seed=3)
    orders = [_epoch(straight, e) for e in range(4)]
    for e in range(4):  # a fresh sampler set to epoch e (a resumed run) gives the same order
        resumed = ltml.DeferredClassAwareSampler(labels, start_epoch=2, seed=3)
        assert _epoch(resumed, e) == orders[e]
    assert orders[0] != orders[1]
    assert orders[2] != orders[3]
    other_seed = ltml.DeferredClassAwareSampler(labels, start_epoch=2, seed=4)
    assert _epoch(other_seed, 0) != orders[0]


@pytest.mark.parametrize("epoch", [0, 3])
def test_drs_ranks_partition_the_epoch(epoch):
    labels = _labels()
    world = 3
    single = ltml.DeferredClassAwareSampler(labels, 2, num_draws=50, seed=1, num_replicas=1, rank=0)
    full = _epoch(single, epoch)
    shares = [
        _epoch(
            ltml.DeferredClassAwareSampler(
                labels, 2, num_draws=50, seed=1, num_replicas=world, rank=r
            ),
            epoch,
        )
        for r in range(world)
    ]
    assert {len(s) for s in shares} == {17}  # ceil(50 / 3)
    padded = full + full[: 17 * world - 50]
    for r, share in enumerate(shares):
        assert share == padded[r::world]


def test_drs_num_samples_keyword_is_a_deprecated_name_of_num_draws():
    labels = _labels()
    expected = ltml.DeferredClassAwareSampler(labels, 1, num_draws=50, seed=2, num_replicas=3)
    with pytest.warns(FutureWarning, match="`num_samples` is deprecated .* use `num_draws`") as w:
        old = ltml.DeferredClassAwareSampler(labels, 1, num_samples=50, seed=2, num_replicas=3)
    assert w[0].filename == __file__  # points at the caller
    assert len(old) == len(expected) == 17
    for epoch in (0, 1):  # both phases
        assert _epoch(old, epoch) == _epoch(expected, epoch)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_epoch": -1}, r"`start_epoch` must be an integer .*got -1"),
        ({"start_epoch": 1, "num_draws": 0}, "`num_draws` must be an integer >= 1, got 0"),
        ({"start_epoch": 1, "mode": "cycle", "power": 0.5}, "mode='cycle' is class-balanced"),
    ],
)
def test_drs_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ltml.DeferredClassAwareSampler(_labels(), **kwargs)
    with pytest.raises(ValueError, match="`epoch` must be an integer"):
        ltml.DeferredClassAwareSampler(_labels(), 1).set_epoch(-1)


def test_drs_keeps_its_former_home():
    # Moved to ltml.samplers.deferred; ltml.schedules re-exports the same class.
    assert ltml.schedules.DeferredClassAwareSampler is ltml.samplers.DeferredClassAwareSampler
    assert ltml.DeferredClassAwareSampler is ltml.samplers.deferred.DeferredClassAwareSampler
    assert "DeferredClassAwareSampler" in ltml.schedules.__all__
    assert "DeferredClassAwareSampler" in ltml.samplers.__all__
