"""Soft targets (values in [0, 1], -1 = unknown): every loss that defines them, against literal
transcriptions of its soft form (forward and gradient, float64), and the losses that refuse them.

The transcriptions loop over the elements with scalar operations, reading each formula of the
docstrings as written; autograd through them gives the reference gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ltml
import ltml.functional as LF
from ltml.losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    MultiFocalModifierLoss,
    ReflectiveLabelCorrector,
    WeightedBCE,
)
from ltml.losses import _core as loss_core

COUNTS = [40, 12, 3, 1]
NUM_IMAGES = 60

# One element's loss from its logit (a 0-d float64 tensor with gradient), target and class.
Element = Callable[[Tensor, float, int], Tensor]


def _batch(seed: int = 0, n: int = 6) -> tuple[Tensor, Tensor]:
    """Float64 logits, and soft targets with some exact 0, 1 and -1 (unknown) entries."""
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(n, 4, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.rand(n, 4, generator=g, dtype=torch.float64)
    y[0, :2] = torch.tensor([0.0, 1.0])
    y[1, 1] = -1.0
    y[2, 3] = -1.0
    return z, y


def _reference(z: Tensor, y: Tensor, element: Element, unknown: str = "ignore") -> Tensor:
    """Mean over the known elements (every element for ``unknown="negative"``, -1 read as 0)."""
    total, count = torch.zeros((), dtype=torch.float64), 0
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            t = float(y[i, k])
            if t == -1:
                if unknown == "ignore":
                    continue
                t = 0.0
            total = total + element(z[i, k], t, k)
            count += 1
    return total / max(count, 1)


def _check(
    loss: Callable[[Tensor, Tensor], Tensor],
    element: Element,
    unknown: str = "ignore",
    rtol: float = 1e-12,
) -> None:
    """``loss`` equals the reference, value and gradient, on the soft batch."""
    z, y = _batch()
    got = loss(z, y)
    (grad,) = torch.autograd.grad(got, z)
    want = _reference(z, y, element, unknown)
    (want_grad,) = torch.autograd.grad(want, z)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=rtol, atol=1e-14)
    torch.testing.assert_close(grad, want_grad, rtol=100 * rtol, atol=1e-14)


def _sig(x: Tensor) -> Tensor:
    return 1 / (1 + torch.exp(-x))


def _bce(w_pos: float = 1.0, w_neg: float = 1.0) -> Element:
    """-w [t log p + (1 - t) log(1 - p)], the weight interpolated as t w+ + (1 - t) w-."""

    def element(x: Tensor, t: float, k: int) -> Tensor:
        w = t * w_pos + (1 - t) * w_neg
        return -w * (t * torch.log(_sig(x)) + (1 - t) * torch.log(1 - _sig(x)))

    return element


def _focal(gamma: float, alpha: float | None = None, weight: list[float] | None = None) -> Element:
    """-w a_t (1 - p_t)^gamma [t log p + (1 - t) log(1 - p)], p_t = t p + (1 - t)(1 - p)."""

    def element(x: Tensor, t: float, k: int) -> Tensor:
        p = _sig(x)
        p_t = t * p + (1 - t) * (1 - p)
        a_t = 1.0 if alpha is None else t * alpha + (1 - t) * (1 - alpha)
        w = 1.0 if weight is None else weight[k]
        ce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
        return w * a_t * (1 - p_t) ** gamma * ce

    return element


def test_bce_soft() -> None:
    _check(LF.bce, _bce())
    _check(BCE(), _bce())
    _check(lambda z, y: LF.bce(z, y, unknown="negative"), _bce(), unknown="negative")


def test_bce_soft_with_positive_and_negative_weights() -> None:
    w = torch.tensor([[2.0, 0.5, 1.0, 3.0], [1.0, 1.0, 0.25, 0.5]], dtype=torch.float64)

    def element(x: Tensor, t: float, k: int) -> Tensor:
        return _bce(float(w[0, k]), float(w[1, k]))(x, t, k)

    _check(lambda z, y: LF.bce(z, y, w), element)


def test_weighted_bce_and_deferred_reweighting_soft() -> None:
    loss = WeightedBCE(COUNTS)
    w = loss.weight.tolist()
    _check(loss, lambda x, t, k: w[k] * _bce()(x, t, k))
    drw = ltml.DeferredReweightedBCE(w, start_epoch=1)
    _check(drw, _bce())
    drw.set_epoch(1)
    _check(drw, lambda x, t, k: w[k] * _bce()(x, t, k))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_soft(gamma: float, alpha: float | None) -> None:
    _check(lambda z, y: LF.focal_loss(z, y, gamma=gamma, alpha=alpha), _focal(gamma, alpha))
    _check(FocalLoss(gamma=gamma, alpha=alpha), _focal(gamma, alpha))


def test_class_balanced_focal_soft() -> None:
    loss = ClassBalancedFocalLoss(COUNTS, gamma=1.5)
    _check(loss, _focal(1.5, weight=loss.weight.tolist()))


@pytest.mark.parametrize("detach", [False, True])
def test_asymmetric_soft(detach: bool) -> None:
    gamma_pos, gamma_neg, clip, eps = 1.0, 4.0, 0.05, 1e-8
    w = [1.0, 2.0, 0.5, 3.0]

    def element(x: Tensor, t: float, k: int) -> Tensor:
        p = _sig(x)
        p_m = torch.clamp(p - clip, min=0)
        p_t = t * p + (1 - t) * (1 - p_m)
        focus = (1 - p_t) ** (t * gamma_pos + (1 - t) * gamma_neg)
        if detach:
            focus = focus.detach()
        log_p = t * torch.log(torch.clamp(p, min=eps)) + (1 - t) * torch.log(
            torch.clamp(1 - p_m, min=eps)
        )
        return -w[k] * focus * log_p

    kw = {"gamma_pos": gamma_pos, "gamma_neg": gamma_neg, "clip": clip, "eps": eps}
    weight = torch.tensor(w, dtype=torch.float64)
    _check(
        lambda z, y: LF.asymmetric_loss(z, y, detach_focal_weight=detach, weight=weight, **kw),
        element,
    )
    module = AsymmetricLoss(detach_focal_weight=detach, **kw)
    _check(module, lambda x, t, k: element(x, t, k) / w[k])


@pytest.mark.parametrize("tied", [False, True])
def test_logit_compensated_bce_soft(tied: bool) -> None:
    g = torch.Generator().manual_seed(1)
    sp, mp, sn, mn = (1 + 0.3 * torch.randn(4, generator=g, dtype=torch.float64) for _ in range(4))
    if tied:
        sn, mn = sp, mp
    prior = [n / NUM_IMAGES for n in COUNTS]

    def element(x: Tensor, t: float, k: int) -> Tensor:
        scale = float(sn[k]) + t * (float(sp[k]) - float(sn[k]))
        shift = float(mn[k]) + t * (float(mp[k]) - float(mn[k]))
        v = x * scale + shift
        pos, neg = math.exp(1 - prior[k]), math.exp(prior[k])
        return -(t * pos * torch.log(_sig(v)) + (1 - t) * neg * torch.log(1 - _sig(v)))

    # The weights omega are float32 statistics (as every class statistic): rtol 1e-6.
    call = LF.logit_compensated_bce
    _check(lambda z, y: call(z, y, COUNTS, NUM_IMAGES, sp, mp, sn, mn), element, rtol=1e-6)


def test_logit_compensated_bce_module_soft() -> None:
    loss = LogitCompensatedBCE(COUNTS, NUM_IMAGES).double()
    prior = [n / NUM_IMAGES for n in COUNTS]

    def element(x: Tensor, t: float, k: int) -> Tensor:
        pos, neg = math.exp(1 - prior[k]), math.exp(prior[k])
        return -(t * pos * torch.log(_sig(x)) + (1 - t) * neg * torch.log(1 - _sig(x)))

    _check(loss, element, rtol=1e-6)


def test_ltml_loss_soft_targets() -> None:
    z, y = _batch()
    z_r, y_r = _batch(seed=3)
    terms = LTMLLoss(BCE(), weight=0.5)((z, z.detach() + 1, z_r, z_r.detach() - 1), y, y_r)
    assert terms.cls_u is not None
    assert terms.cls_r is not None
    torch.testing.assert_close(terms.cls_u, _reference(z, y, _bce()), rtol=1e-12, atol=0)
    torch.testing.assert_close(terms.cls_r, _reference(z_r, y_r, _bce()), rtol=1e-12, atol=0)


def test_mixed_batch_feeds_the_losses() -> None:
    """mix_batch's targets: BCE is linear in the target, so the loss of the mixed targets is the
    λ-mix of the two sources' losses, wherever both are known; other losses match their
    transcriptions on them."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 4, 4, generator=g)
    labels = (torch.rand(8, 4, generator=g) < 0.4).long()
    labels[2, 1] = labels[5, 0] = -1
    mixed = ltml.mix_batch(images, labels, 0.4, generator=g)
    lam, j = mixed.lam, mixed.permutation
    assert 0 < lam < 1
    assert ((mixed.targets > 0) & (mixed.targets < 1)).any()
    z = torch.randn(8, 4, generator=g, dtype=torch.float64)
    y = labels.double()
    got = LF.bce(z, mixed.targets, reduction="none")
    each = LF.bce(z, y, reduction="none"), LF.bce(z, y[j], reduction="none")
    known = (y >= 0) & (y[j] >= 0)
    want = torch.where(known, lam * each[0] + (1 - lam) * each[1], 0.0)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)  # λ was mixed in float32
    assert (got[~known] == 0).all()
    zg = z.clone().requires_grad_()
    t64 = mixed.targets.double()
    for loss, element in [
        (FocalLoss(), _focal(2.0)),
        (BCE(), _bce()),
    ]:
        torch.testing.assert_close(loss(zg, mixed.targets), _reference(zg, t64, element))


@pytest.mark.parametrize(
    "call",
    [
        lambda z, y: DistributionBalancedLoss(COUNTS, NUM_IMAGES)(z, y),
        lambda z, y: LF.distribution_balanced_loss(z, y, COUNTS, NUM_IMAGES),
        lambda z, y: MultiFocalModifierLoss(COUNTS)(z, y),
        lambda z, y: LF.multi_focal_modifier_loss(z, y, COUNTS),
        lambda z, y: ReflectiveLabelCorrector(COUNTS)(z, y),
        lambda z, y: LF.reflective_label_correction(z, y, 0.5),
    ],
)
def test_losses_that_need_hard_labels_refuse_soft_targets(call: Callable[..., Tensor]) -> None:
    z, y = _batch()
    with pytest.raises(ValueError, match=r"`targets` must contain only values in \{0, 1, -1\}.*"
                       r"needs 0 / 1 labels: it is not defined for soft targets"):  # fmt: skip
        call(z, y)
    call(z, y.round())  # 0 / 1 / -1: accepted


@pytest.mark.parametrize("bad", [1.5, -0.5, math.nan])
@pytest.mark.parametrize(
    "loss", [BCE(), FocalLoss(), AsymmetricLoss(), WeightedBCE(COUNTS)], ids=type
)
def test_soft_losses_refuse_values_outside_the_unit_interval(bad: float, loss: BCE) -> None:
    z, y = _batch()
    y[3, 2] = bad
    with pytest.raises(
        ValueError, match=r"`targets` must contain only values in \{-1\} ∪ \[0, 1\]"
    ):
        loss(z, y)


def test_soft_targets_sync_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """The accelerator path: soft targets pass, bad ones fail as device-side assertions."""
    monkeypatch.setattr(loss_core, "sync_free", lambda x: True)
    z, y = _batch()
    _check(LF.bce, _bce())
    y[3, 2] = 1.5
    with pytest.raises(RuntimeError, match=r"\{-1\} ∪ \[0, 1\]"):
        LF.bce(z, y)
    with pytest.raises(RuntimeError, match=r"\{0, 1, -1\}"):
        LF.distribution_balanced_loss(z, _batch()[1], COUNTS, NUM_IMAGES)


def test_hard_targets_give_the_hard_formula_to_the_bit() -> None:
    """The soft forms reduce, for 0 / 1 targets, to the hard formulas written with the target's
    sign (``sigmoid(-s)``, a selection by label), bit for bit, saturated logits included."""
    g = torch.Generator().manual_seed(0)
    z = 8 * torch.randn(16, 5, generator=g)
    z[0] = torch.tensor([60.0, -60.0, 200.0, -200.0, 0.0])
    t = (torch.rand(16, 5, generator=g) < 0.4).float()
    ce = torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none")
    minus_s = z * (1 - 2 * t)
    for gamma in (0.5, 2.0):
        focus = (
            torch.exp(gamma * torch.nn.functional.logsigmoid(minus_s))
            if gamma < 1
            else torch.sigmoid(minus_s).pow(gamma)
        )
        got = LF.focal_loss(z, t, gamma=gamma, reduction="none")
        assert torch.equal(got, ce * focus)
    p = torch.sigmoid(z)
    pos = t > 0
    p_t = torch.where(pos, p, 1 - (p - 0.05).clamp(min=0))
    asl = -(1 - p_t).pow(torch.where(pos, 1.0, 4.0)) * torch.log(p_t.clamp(min=1e-8))
    assert torch.equal(LF.asymmetric_loss(z, t, gamma_pos=1.0, reduction="none"), asl)
