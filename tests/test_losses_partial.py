"""Tests of the partial-label losses: ASL, COMIC's MFM loss and label corrector, unknown policy.

Oracles: literal transcriptions of the authors' forward passes (Ridnik et al.'s
``AsymmetricLoss``; COMIC's ``PriorFocalModifierLoss`` and ``ReflectiveLabelCorrectorLoss``),
written here for 0 / 1 labels with the code's own operations, compared in float64 to 1e-10 in
value and gradient. The generic checks every loss passes (autocast, inputs unchanged, extreme
logits, ...) run on ASL and MFM through ``test_losses.CASES``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

import ltml
from ltml import functional as LF
from ltml.data import class_counts, cooccurrence
from ltml.losses import AsymmetricLoss, MultiFocalModifierLoss, ReflectiveLabelCorrector
from test_losses import CASE_IDS, CASES, _batch

TIGHT = {"rtol": 1e-10, "atol": 1e-10}


# --- oracles: the authors' forward passes, transcribed ----------------------------------------


def ref_asl(z: Tensor, y: Tensor, gamma_pos, gamma_neg, clip, eps, detach) -> Tensor:
    """Ridnik et al.'s ``AsymmetricLoss.forward`` per element (their code sums it), -1 -> 0."""
    known = y >= 0
    y = y.clamp(min=0).to(z.dtype)
    xs_pos = torch.sigmoid(z)
    xs_neg = 1 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(not detach and torch.is_grad_enabled()):
            pt = xs_pos * y + xs_neg * (1 - y)
            one_sided_w = torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
        loss = loss * one_sided_w
    return torch.where(known, -loss, 0.0)


def ref_mfm_weight(counts, power) -> Tensor:
    prob = torch.tensor([c / sum(counts) for c in counts], dtype=torch.float64)
    prob = prob / prob.max()
    return torch.pow(-prob.log() + 1, power)


def ref_mfm(z, y, counts, co, *, gamma_pos, gamma_neg, boost, clip, eps, power, detach):
    """COMIC's ``PriorFocalModifierLoss.forward`` per element (their code sums it), -1 -> 0."""
    known = y >= 0
    y = y.clamp(min=0).to(z.dtype)
    weight = ref_mfm_weight(counts, power)
    if co is None:
        attention = torch.zeros_like(z)
    else:
        co = co.to(torch.float64)
        co = co / co.sum(axis=0)
        rows = []
        for k in range(y.shape[0]):
            scores = co[y[k] == 1].mean(dim=0)
            rows.append(scores / scores.sum())  # NaN for an image with no positive
        attention = torch.stack(rows, 0)
    x_sigmoid = torch.sigmoid(z)
    xs_pos = x_sigmoid * (1 - attention)
    xs_neg = 1 - x_sigmoid
    if clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    xs_neg = torch.where(attention == 0, xs_neg, xs_neg * boost).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = loss * weight
    with torch.set_grad_enabled(not detach and torch.is_grad_enabled()):
        pt = xs_pos * y + xs_neg * (1 - y)
        w = torch.pow(1 - pt, gamma_pos * y + (gamma_neg + weight) * (1 - y))
    loss = loss * w
    return torch.where(known, -loss, 0.0)


def _reduce(elements: Tensor, y: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return elements
    if reduction == "sum":
        return elements.sum()
    return elements.sum() / (y >= 0).sum()


# --- ASL --------------------------------------------------------------------------------------

ASL_SETTINGS = {
    "paper": {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05, "detach": False},
    "reference_class": {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05, "detach": True},
    "both_focused_with_grad": {"gamma_pos": 1.5, "gamma_neg": 2.0, "clip": 0.1, "detach": False},
    "no_clip": {"gamma_pos": 1.0, "gamma_neg": 3.0, "clip": 0.0, "detach": False},
}


def _asl_pair(setting: str, reduction: str):
    s = ASL_SETTINGS[setting]
    kw = {"gamma_pos": s["gamma_pos"], "gamma_neg": s["gamma_neg"], "clip": s["clip"]}
    module = AsymmetricLoss(**kw, detach_focal_weight=s["detach"], reduction=reduction)

    def functional(z, y):
        return LF.asymmetric_loss(z, y, **kw, detach_focal_weight=s["detach"], reduction=reduction)

    def oracle(z, y):
        return _reduce(ref_asl(z, y, eps=1e-8, **s), y, reduction)

    return module, functional, oracle


def _logits_with_extremes(seed: int = 0) -> tuple[Tensor, Tensor]:
    z, y = _batch(8, 5, seed=seed)
    z[2, :] = torch.tensor([100.0, -100.0, 100.0, -100.0, 40.0], dtype=torch.float64)
    y[2, :] = torch.tensor([1, 1, 0, 0, -1])
    return z, y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("setting", list(ASL_SETTINGS))
def test_asl_matches_reference_forward_and_gradient(setting, reduction):
    z, y = _logits_with_extremes()
    module, functional, oracle = _asl_pair(setting, reduction)
    z_ref = z.clone().requires_grad_(True)
    expected = oracle(z_ref, y)
    (g_ref,) = torch.autograd.grad(expected.sum(), z_ref)
    for fn in (module, functional):
        zz = z.clone().requires_grad_(True)
        got = fn(zz, y)
        (g,) = torch.autograd.grad(got.sum(), zz)
        torch.testing.assert_close(got, expected, **TIGHT)
        torch.testing.assert_close(g, g_ref, **TIGHT)
        assert bool(torch.isfinite(g).all())


def test_asl_gradient_modes_differ_only_through_the_focal_weight():
    z, y = _batch(6, 4, seed=4, unknown=False)
    grads = {}
    for detach in (False, True):
        zz = z.clone().requires_grad_(True)
        LF.asymmetric_loss(zz, y, gamma_pos=1.0, detach_focal_weight=detach).backward()
        grads[detach] = zz.grad
    # Same value, different gradient: the weight's own derivative is what detaching removes.
    assert not torch.allclose(grads[False], grads[True])
    # Positives, gamma+ = 1: d/dz[-(1-p) log p] = -(1-p)^2 + p(1-p) log p; detached: -(1-p)^2.
    p = torch.sigmoid(z)
    pos = y == 1
    n = y.numel()
    full = (-((1 - p) ** 2) + p * (1 - p) * torch.log(p)) / n
    torch.testing.assert_close(grads[False][pos], full[pos], **TIGHT)
    torch.testing.assert_close(grads[True][pos], (-((1 - p) ** 2) / n)[pos], **TIGHT)


@pytest.mark.parametrize("setting", [s for s in ASL_SETTINGS if not ASL_SETTINGS[s]["detach"]])
def test_asl_gradcheck(setting):
    # (A detached focal weight is, by design, not the derivative of the value: that mode is
    # checked against the reference's gradient above.)
    z, y = _batch(4, 5, seed=5)
    z = z.clone().requires_grad_(True)
    _, functional, _ = _asl_pair(setting, "sum")
    assert torch.autograd.gradcheck(lambda a: functional(a, y), (z,))


def test_asl_sum_is_the_reference_scale_and_mean_divides_by_known_elements():
    z, y = _batch(16, 5, seed=6)
    total = LF.asymmetric_loss(z, y, reduction="sum")
    torch.testing.assert_close(LF.asymmetric_loss(z, y), total / (y >= 0).sum(), **TIGHT)
    z_full, y_full = _batch(16, 5, seed=6, unknown=False)
    ratio = LF.asymmetric_loss(z_full, y_full, reduction="sum") / LF.asymmetric_loss(z_full, y_full)
    assert ratio.item() == pytest.approx(16 * 5, rel=1e-12)


def test_asl_margin_discards_easy_negatives():
    # p < clip: a negative contributes exactly 0 and no gradient (the hard threshold of ASL).
    z = torch.tensor([[math.log(0.04 / 0.96), math.log(0.06 / 0.94)]], dtype=torch.float64)
    z.requires_grad_(True)
    loss = LF.asymmetric_loss(z, torch.zeros(1, 2), reduction="none")
    loss.sum().backward()
    assert loss[0, 0].item() == 0.0
    assert z.grad[0, 0].item() == 0.0
    assert loss[0, 1].item() > 0.0
    assert z.grad[0, 1].item() > 0.0


def test_asl_eps_clamp_bounds_each_element():
    z = torch.tensor([[-200.0, 200.0]], dtype=torch.float64)
    y = torch.tensor([[1, 0]])
    got = LF.asymmetric_loss(z, y, gamma_neg=0.0, clip=0.0, reduction="none")
    torch.testing.assert_close(got, torch.full((1, 2), -math.log(1e-8), dtype=torch.float64))


def test_asl_defaults_are_the_papers():
    loss = AsymmetricLoss()
    assert (loss.gamma_pos, loss.gamma_neg, loss.clip, loss.eps) == (0.0, 4.0, 0.05, 1e-8)
    assert loss.detach_focal_weight is False
    assert loss.reduction == "mean"
    assert "gamma_neg=4.0" in repr(loss)
    assert "unknown='ignore'" in repr(loss)


# --- MFM --------------------------------------------------------------------------------------

TRAIN = torch.tensor(
    [[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1], [1, 0, -1, 0]]
)
MFM_SETTINGS = {
    "paper_defaults": {"boost": 1.0, "detach": False, "power": 1 / 3, "co": True},
    "released_code": {"boost": 1.2, "detach": True, "power": 1 / 3, "co": True},
    "no_cooccurrence": {"boost": 1.0, "detach": False, "power": 0.5, "co": False},
}


def _mfm_batch() -> tuple[Tensor, Tensor]:
    z, y = _batch(6, 4, seed=7)
    y[:, 3] = torch.tensor([0, 1, 0, 0, 1, -1])
    y[y.clamp(min=0).sum(dim=1) == 0, 0] = 1  # the code's attention needs a positive per image
    z[5, :] = torch.tensor([100.0, -100.0, 60.0, -60.0], dtype=torch.float64)
    return z, y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("setting", list(MFM_SETTINGS))
def test_mfm_matches_released_code_forward_and_gradient(setting, reduction):
    s = MFM_SETTINGS[setting]
    z, y = _mfm_batch()
    counts = class_counts(TRAIN)
    co = cooccurrence(TRAIN) if s["co"] else None
    z_ref = z.clone().requires_grad_(True)
    elements = ref_mfm(
        z_ref, y, counts.tolist(), co, gamma_pos=0.0, gamma_neg=3.0, boost=s["boost"],
        clip=0.05, eps=1e-8, power=s["power"], detach=s["detach"],
    )  # fmt: skip
    expected = _reduce(elements, y, reduction)
    (g_ref,) = torch.autograd.grad(expected.sum(), z_ref)
    kw = {"neg_boost": s["boost"], "weight_power": s["power"], "reduction": reduction}
    functional = lambda a: LF.multi_focal_modifier_loss(  # noqa: E731
        a, y, counts, co, detach_focal_weight=s["detach"], **kw
    )
    module = MultiFocalModifierLoss(counts, co, detach_focal_weight=s["detach"], **kw).double()
    for fn in (functional, lambda a: module(a, y)):
        zz = z.clone().requires_grad_(True)
        got = fn(zz)
        (g,) = torch.autograd.grad(got.sum(), zz)
        # The module's statistics are float32 buffers; the functional computes them in float64.
        tol = TIGHT if fn is functional else {"rtol": 1e-6, "atol": 1e-8}
        torch.testing.assert_close(got, expected, **tol)
        torch.testing.assert_close(g, g_ref, **tol)


def test_mfm_gradcheck():
    z, y = _mfm_batch()
    z = (z.clamp(-4, 4) + 0.01).requires_grad_(True)
    counts, co = class_counts(TRAIN), cooccurrence(TRAIN)
    assert torch.autograd.gradcheck(
        lambda a: LF.multi_focal_modifier_loss(a, y, counts, co, neg_boost=1.2), (z,)
    )


def test_mfm_image_without_positive_is_finite_where_the_code_is_nan():
    counts, co = class_counts(TRAIN), cooccurrence(TRAIN)
    z = torch.tensor([[0.5, -1.0, 2.0, 0.1], [1.0, 0.0, -2.0, 0.3]], dtype=torch.float64)
    y = torch.tensor([[0, 0, 0, -1], [1, 0, 1, 0]])
    kw = {"gamma_pos": 0.0, "gamma_neg": 3.0, "boost": 1.0, "clip": 0.05, "eps": 1e-8}
    code = ref_mfm(z, y, counts.tolist(), co, power=1 / 3, detach=False, **kw)
    assert bool(torch.isnan(code[0]).any())
    got = LF.multi_focal_modifier_loss(z, y, counts, co, reduction="none")
    assert bool(torch.isfinite(got).all())
    # That image is left unmodified: its row equals the loss without co-occurrence.
    plain = LF.multi_focal_modifier_loss(z, y, counts, None, reduction="none")
    torch.testing.assert_close(got[0], plain[0], **TIGHT)
    torch.testing.assert_close(got[1], code[1], **TIGHT)


def test_mfm_from_labels_and_weights():
    loss = MultiFocalModifierLoss.from_labels(TRAIN.numpy())
    torch.testing.assert_close(loss.weight, ref_mfm_weight([5, 3, 1, 1], 1 / 3).float())
    assert torch.equal(loss.cooccurrence, cooccurrence(TRAIN).float())
    assert loss.weight[0].item() == 1.0  # the most frequent class
    assert bool((loss.weight[1:] > 1).all())


def test_cooccurrence_literal():
    got = cooccurrence(TRAIN)
    expected = torch.zeros(4, 4, dtype=torch.int64)
    for row in TRAIN.tolist():
        for j in range(4):
            for k in range(4):
                expected[j, k] += int(row[j] == 1 and row[k] == 1)
    assert torch.equal(got, expected)
    assert torch.equal(got.diagonal(), class_counts(TRAIN))


# --- the label corrector -----------------------------------------------------------------------


def test_correction_functional_candidates_and_per_class_threshold():
    z = torch.tensor([[2.0, 2.0, 2.0], [-2.0, 2.0, 0.1]])
    y = torch.tensor([[-1, 0, 1], [-1, -1, -1]])
    t = torch.tensor([0.9, 0.5, 0.5])  # sigma(2) = 0.88: below class 0's threshold only
    assert LF.reflective_label_correction(z, y, t).tolist() == [[-1, 0, 1], [-1, 1, 1]]
    got = LF.reflective_label_correction(z, y, t, candidates="unobserved")
    assert got.tolist() == [[0, 1, 1], [0, 1, 1]]


def _corrector_batch() -> tuple[Tensor, Tensor]:
    z, y = _batch(8, 4, seed=8)
    y[2:6, 1] = -1
    z[2:6, 1] = torch.tensor([3.0, 0.2, 2.5, -1.0], dtype=torch.float64)
    return z, y


def test_corrector_running_threshold_and_counts():
    z, y = _corrector_batch()
    rlc = ReflectiveLabelCorrector(class_counts(TRAIN), start_epoch=0, momentum=0.5).double()
    out = rlc(z, y)
    p = torch.sigmoid(z)
    running = 0.5 * p.mean(dim=0)  # from 0, momentum 0.5
    torch.testing.assert_close(rlc.running_mean, running)
    expected = torch.where((y < 0) & (p > running.clamp(min=0.7)), 1, y)
    assert torch.equal(out.targets, expected)
    new = ((expected == 1) & (y != 1)).sum(dim=0)
    assert new.sum() > 0
    assert torch.equal(rlc.pseudo_counts, new.double())
    # Its loss: the MFM loss without co-occurrence on the corrected targets, weights 1/6 from
    # the training counts plus the pseudo-positives.
    counts = class_counts(TRAIN).double() + new
    weight = (1 - torch.log(counts / counts.max())) ** (1 / 6)
    elements = ref_mfm(
        z, expected, counts.tolist(), None, gamma_pos=0.0, gamma_neg=3.0, boost=1.0,
        clip=0.05, eps=1e-8, power=1 / 6, detach=False,
    )  # fmt: skip
    torch.testing.assert_close(rlc.class_weight().double(), weight, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.loss, _reduce(elements, expected, "mean"), rtol=1e-6, atol=0)
    # A new epoch forgets the pseudo-positives; evaluation mode changes no state.
    rlc.set_epoch(1)
    assert bool((rlc.pseudo_counts == 0).all())
    rlc.eval()
    before = rlc.running_mean.clone()
    rlc(z, y)
    assert torch.equal(rlc.running_mean, before)
    assert bool((rlc.pseudo_counts == 0).all())


def test_corrector_released_code_variant():
    """``threshold="batch"``, margin 1, every unobserved entry: the released rule and loss."""
    z, y = _corrector_batch()
    y01 = y.clamp(min=0)  # the released code's files store a missing label as 0
    counts = class_counts(TRAIN)
    rlc = ReflectiveLabelCorrector(
        counts, threshold="batch", margin=1.0, candidates="unobserved", start_epoch=1,
        detach_focal_weight=True, reduction="sum",
    ).double()  # fmt: skip
    rlc.set_epoch(0)
    assert rlc(z, y01).loss.item() == 0.0  # warm-up epoch: no correction, no loss
    rlc.set_epoch(1)
    zz = z.clone().requires_grad_(True)
    out = rlc(zz, y01)
    # The released forward, transcribed.
    z_ref = z.clone().requires_grad_(True)
    logits = torch.where(y01 == 1, z_ref - 1.0, z_ref)
    prediction = torch.sigmoid(logits)
    average = prediction.mean(dim=0).repeat(prediction.shape[0], 1)
    targets = torch.where((prediction > 0.7) & (prediction > average), 1, y01)
    assert torch.equal(out.targets, targets)
    distribution = counts.double() + (targets - y01).sum(dim=0)
    elements = ref_mfm(
        logits, targets, distribution.tolist(), None, gamma_pos=0.0, gamma_neg=3.0,
        boost=1.0, clip=0.05, eps=1e-8, power=1 / 6, detach=True,
    )  # fmt: skip
    # The released code also scales by batch size / positives; ``reduction="sum"`` does not.
    expected = elements.sum()
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=0)
    out.loss.backward()
    expected.backward()
    torch.testing.assert_close(zz.grad, z_ref.grad, rtol=1e-6, atol=1e-9)


def test_corrector_state_dict_round_trip():
    z, y = _corrector_batch()
    rlc = ReflectiveLabelCorrector(class_counts(TRAIN), start_epoch=0)
    rlc(z.float(), y)
    other = ReflectiveLabelCorrector([1, 1, 1, 1], start_epoch=0)
    other.load_state_dict(rlc.state_dict())
    for name in ("counts", "running_mean", "pseudo_counts"):
        assert torch.equal(getattr(other, name), getattr(rlc, name))


def test_corrector_warms_up_for_one_epoch_by_default():
    z, y = _corrector_batch()
    rlc = ReflectiveLabelCorrector(class_counts(TRAIN))
    assert repr(rlc) == (
        "ReflectiveLabelCorrector(tau=0.7, threshold='running', candidates='unknown', "
        "margin=0.0, start_epoch=1, reduction='mean', unknown='ignore')"
    )
    out = rlc(z, y)  # epoch 0 until set_epoch: no correction, no loss, no state change
    assert out.loss.item() == 0.0
    assert out.targets is y
    assert not rlc.running_mean.any()
    assert not rlc.pseudo_counts.any()
    rlc.set_epoch(1)
    out = rlc(z, y)
    assert out.targets.dtype == y.dtype
    assert out.targets[2, 1] == 1
    assert y[2, 1] == -1
    assert out.loss.item() > 0.0
    # the class statistics are float32 buffers, whatever the dtype of the counts given
    assert [v.dtype for v in rlc.state_dict().values()] == [torch.float32] * 3


def test_corrector_pseudo_counts_add_up_over_training_batches():
    z, y = _corrector_batch()
    rlc = ReflectiveLabelCorrector(class_counts(TRAIN), start_epoch=0, momentum=0.0).double()
    found = ((rlc(z, y).targets == 1) & (y != 1)).sum(dim=0)
    assert found.sum() > 0
    rlc(z, y)  # momentum 0: the same batch gives the same threshold, the same corrections
    assert torch.equal(rlc.pseudo_counts, 2 * found.double())


def test_corrector_batch_threshold_is_the_batch_mean_not_the_running_one():
    # Class 0's mean confidence in this batch is 0.92 (above tau = 0.7); the unknown entry at
    # 0.82 is above tau and above the running mean (0.1 * 0.92 after one step from 0), but not
    # above the batch mean.
    z = torch.tensor([[3.0, 0.0], [3.0, 0.0], [3.0, 0.0], [1.5, 0.0]], dtype=torch.float64)
    y = torch.tensor([[1, 0], [1, 0], [1, 1], [-1, 0]])
    by_batch = ReflectiveLabelCorrector([3, 1], threshold="batch", start_epoch=0)
    by_running = ReflectiveLabelCorrector([3, 1], threshold="running", start_epoch=0)
    assert by_batch.double()(z, y).targets[3, 0] == -1
    assert by_running.double()(z, y).targets[3, 0] == 1


def test_corrector_passes_every_loss_setting_to_the_mfm_loss():
    counts = [30, 10, 2, 5]
    settings = {
        "gamma_pos": 0.5, "gamma_neg": 2.0, "clip": 0.1, "eps": 0.05, "weight_power": 0.5,
        "detach_focal_weight": True, "reduction": "sum", "unknown": "negative",
    }  # fmt: skip
    rlc = ReflectiveLabelCorrector(counts, tau=0.95, start_epoch=0, **settings).eval()
    z, y = _batch(8, 4, seed=3)
    a = z.clone().requires_grad_(True)
    out = rlc(a, y)
    corrected = LF.reflective_label_correction(z, y, 0.95)
    assert bool((corrected == -1).any())  # unknown entries are left for the policy
    b = z.clone().requires_grad_(True)
    expected = LF.multi_focal_modifier_loss(b, corrected, counts, **settings)
    assert torch.equal(out.targets, corrected)
    assert torch.equal(out.loss, expected)
    (grad_expected,) = torch.autograd.grad(expected, b)
    assert torch.equal(torch.autograd.grad(out.loss, a)[0], grad_expected)
    # Each setting changes this batch's loss or gradient, so that none can be dropped unseen.
    defaults = {
        "gamma_pos": 0.0, "gamma_neg": 3.0, "clip": 0.05, "eps": 1e-8, "weight_power": 1 / 6,
        "detach_focal_weight": False, "reduction": "mean", "unknown": "ignore",
    }  # fmt: skip
    for name, default in defaults.items():
        c = z.clone().requires_grad_(True)
        other = LF.multi_focal_modifier_loss(c, corrected, counts, **{**settings, name: default})
        (grad,) = torch.autograd.grad(other, c)
        assert not (torch.equal(other, expected) and torch.equal(grad, grad_expected)), name


# --- the unknown-label policy, for every loss ---------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", CASE_IDS)
def test_unknown_negative_is_the_loss_of_the_labels_with_zeros(name, reduction):
    z, y = _batch()
    assert bool((y < 0).any())
    module = CASES[name].make(reduction).double()
    module.unknown = "negative"
    zeros = y.clamp(min=0)
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    got, expected = module(za, y), CASES[name].make(reduction).double()(zb, zeros)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    got.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(za.grad, zb.grad, rtol=1e-12, atol=0)
    ignored = CASES[name].make(reduction).double()(z, y)
    assert not torch.equal(ignored, got)  # the unknown elements now count


FUNCTIONALS = {
    "bce": lambda z, y, **k: LF.bce(z, y, **k),
    "focal_loss": lambda z, y, **k: LF.focal_loss(z, y, **k),
    "asymmetric_loss": lambda z, y, **k: LF.asymmetric_loss(z, y, **k),
    "distribution_balanced_loss": lambda z, y, **k: LF.distribution_balanced_loss(
        z, y, [40, 12, 3, 1], 60, **k
    ),
    "logit_compensated_bce": lambda z, y, **k: LF.logit_compensated_bce(
        z, y, [40, 12, 3, 1], 60, **k
    ),
    "multi_focal_modifier_loss": lambda z, y, **k: LF.multi_focal_modifier_loss(
        z, y, [40, 12, 3, 1], cooccurrence(TRAIN), **k
    ),
}


@pytest.mark.parametrize("name", list(FUNCTIONALS))
def test_every_functional_takes_the_policy(name):
    z, y = _batch()
    fn = FUNCTIONALS[name]
    torch.testing.assert_close(
        fn(z, y, unknown="negative"), fn(z, y.clamp(min=0)), rtol=1e-12, atol=0
    )
    with pytest.raises(
        ValueError, match="`unknown` must be one of 'ignore', 'negative', got str 'positive'"
    ):
        fn(z, y, unknown="positive")


# --- label-drop simulators and PLT sets -------------------------------------------------------


# --- the losses away from their defaults: hyper-parameters, weights, dtypes, edge cases -------


def test_asl_positive_negative_weights_and_any_exponent():
    """A (2, C) weight (row 0 on positives, row 1 on negatives) and focusing exponents that no
    float32 holds exactly, against the authors' forward in float64."""
    z, y = _logits_with_extremes()
    w = torch.tensor([[2.0, 0.5, 1.0, 3.0, 1.5], [0.1, 1.0, 0.0, 2.0, 0.7]], dtype=torch.float64)
    kw = {"gamma_pos": 1.3, "gamma_neg": 3.7, "clip": 0.1}
    element_weight = torch.where(y == 1, w[0], w[1])
    z_ref = z.clone().requires_grad_(True)
    elements = element_weight * ref_asl(z_ref, y, eps=1e-8, detach=False, **kw)
    for reduction in ("mean", "sum", "none"):
        zz = z.clone().requires_grad_(True)
        got = LF.asymmetric_loss(zz, y, weight=w, reduction=reduction, **kw)
        expected = _reduce(elements, y, reduction)
        torch.testing.assert_close(got, expected, **TIGHT)
        (g,) = torch.autograd.grad(got.sum(), zz)
        (g_ref,) = torch.autograd.grad(expected.sum(), z_ref, retain_graph=True)
        torch.testing.assert_close(g, g_ref, **TIGHT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asl_and_mfm_exponents_below_one_have_finite_gradients(dtype):
    """(1 - p_t)^gamma with gamma < 1 has an infinite derivative where p_t = 1: a saturated
    positive, or a negative below the margin, where the loss is flat. The authors' code gives
    NaN there; the gradient is 0, and the reference's elsewhere."""
    z, y = _logits_with_extremes()
    z[3, :] = torch.tensor([-6.0, 25.0, -30.0, 1.0, 0.0], dtype=torch.float64)
    y[3, :] = torch.tensor([0, 1, 0, 1, 0])
    tol = TIGHT if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-7}

    def check(loss, reference, z, y):
        z_ref, zz = z.clone().requires_grad_(True), z.to(dtype).requires_grad_(True)
        (g_ref,) = torch.autograd.grad(reference(z_ref, y).sum(), z_ref)
        (g,) = torch.autograd.grad(loss(zz, y), zz)
        flat = torch.isnan(g_ref)
        assert bool(flat.any())
        assert bool((g[flat] == 0).all())
        torch.testing.assert_close(g.double()[~flat], g_ref[~flat], **tol)

    kw = {"gamma_pos": 0.5, "gamma_neg": 0.7, "clip": 0.05}
    check(
        lambda a, t: LF.asymmetric_loss(a, t, reduction="sum", **kw),
        lambda a, t: ref_asl(a, t, eps=1e-8, detach=False, **kw),
        z,
        y,
    )
    # MFM without co-occurrence (p+ = p), on the same elements
    counts = class_counts(TRAIN)
    mfm_kw = {"gamma_pos": 0.5, "gamma_neg": 3.0, "boost": 1.0, "clip": 0.05, "eps": 1e-8}
    check(
        lambda a, t: LF.multi_focal_modifier_loss(a, t, counts, gamma_pos=0.5, reduction="sum"),
        lambda a, t: ref_mfm(a, t, counts.tolist(), None, power=1 / 3, detach=False, **mfm_kw),
        z[:, :4],
        y[:, :4],
    )


def _mfm_reference(z, y, **kw):
    base = {"gamma_pos": 0.0, "gamma_neg": 3.0, "boost": 1.0, "clip": 0.05, "eps": 1e-8}
    base.update(kw)
    co = cooccurrence(TRAIN)
    return ref_mfm(z, y, class_counts(TRAIN).tolist(), co, power=1 / 3, detach=False, **base)


@pytest.mark.parametrize("boost", [1.2, 2.0])
def test_mfm_boost_only_where_the_attention_is_not_zero(boost):
    """Classes 1 and 2 never co-occur in TRAIN: in an image whose only positive is class 1,
    class 2 has attention 0 and its negative is not boosted, however confident the logit."""
    z = torch.tensor(
        [[0.5, 1.0, 2.0, 1.5], [2.0, -1.0, 1.0, 2.5], [1.0, 0.5, -0.5, 3.0]], dtype=torch.float64
    )
    y = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0]])
    counts, co = class_counts(TRAIN), cooccurrence(TRAIN)
    zz, z_ref = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    got = LF.multi_focal_modifier_loss(zz, y, counts, co, neg_boost=boost, reduction="none")
    expected = _mfm_reference(z_ref, y, boost=boost)
    torch.testing.assert_close(got, expected, **TIGHT)
    (g,) = torch.autograd.grad(got.sum(), zz)
    (g_ref,) = torch.autograd.grad(expected.sum(), z_ref)
    torch.testing.assert_close(g, g_ref, **TIGHT)


def test_mfm_image_without_positive_is_not_boosted():
    counts, co = class_counts(TRAIN), cooccurrence(TRAIN)
    z = torch.tensor([[0.5, -1.0, 2.0, 0.1], [1.0, 0.0, -2.0, 0.3]], dtype=torch.float64)
    y = torch.tensor([[0, 0, 0, -1], [1, 0, 1, 0]])
    got = LF.multi_focal_modifier_loss(z, y, counts, co, neg_boost=1.2, reduction="none")
    plain = LF.multi_focal_modifier_loss(z, y, counts, None, reduction="none")
    torch.testing.assert_close(got[0], plain[0], **TIGHT)
    torch.testing.assert_close(got[1], _mfm_reference(z, y, boost=1.2)[1], **TIGHT)


def test_mfm_float32_logits_give_a_float32_loss_at_float32_precision():
    """Computed in the logits' float32, the co-occurrence attention included: the float64
    reference agrees to float32 rounding (an attention in bfloat16 would be ~1e-3 off)."""
    z, y = _mfm_batch()
    z = z.clamp(-8, 8).float()
    counts, co = class_counts(TRAIN), cooccurrence(TRAIN)
    got = LF.multi_focal_modifier_loss(z, y, counts, co, neg_boost=1.2, reduction="none")
    assert got.dtype == torch.float32
    expected = _mfm_reference(z.double(), y, boost=1.2)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)


def test_correction_is_strictly_above_the_threshold():
    z = torch.tensor([[0.0, 1e-6, -1e-6]], dtype=torch.float64)  # sigmoid(0) = 1/2 exactly
    y = torch.tensor([[-1, -1, -1]])
    assert LF.reflective_label_correction(z, y, 0.5).tolist() == [[-1, 1, -1]]


def test_correction_threshold_at_the_logits_precision():
    """A float threshold is compared in float64 with float64 logits (0.7 is not a float32)."""
    eps = 1e-9
    z = torch.logit(torch.tensor([[0.7 - eps, 0.7 + eps]], dtype=torch.float64))
    y = torch.tensor([[-1, -1]])
    assert LF.reflective_label_correction(z, y, 0.7).tolist() == [[-1, 1]]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda z, y: LF.multi_focal_modifier_loss(z, y, [1, 2, 3, 4], neg_boost=0.5),
            ValueError,
            "`neg_boost` must be a finite real number >= 1",
        ),
        (
            lambda z, y: LF.multi_focal_modifier_loss(z, y, [1, 2, 3]),
            ValueError,
            "`logits` must have 3 columns",
        ),
        (
            lambda z, y: LF.multi_focal_modifier_loss(z, y / 2, [1, 2, 3, 4]),
            ValueError,
            "the Multi-Focal Modifier loss needs 0 / 1 labels",
        ),
        (
            lambda z, y: LF.reflective_label_correction(z.long(), y, 0.5),
            TypeError,
            "`logits` must be a floating-point",
        ),
        (
            lambda z, y: LF.reflective_label_correction(z, y.tolist(), 0.5),
            TypeError,
            "`targets` must be a torch.Tensor or numpy",
        ),
        (
            lambda z, y: LF.reflective_label_correction(z, y[:2], 0.5),
            ValueError,
            "`logits` and `targets` must have the same shape",
        ),
        (
            lambda z, y: LF.reflective_label_correction(z * math.nan, y, 0.5),
            ValueError,
            "`logits` must be finite",
        ),
        (
            lambda z, y: LF.reflective_label_correction(z, y / 2, 0.5),
            ValueError,
            "the Reflective Label Corrector needs 0 / 1 labels",
        ),
    ],
)
def test_functional_forms_name_the_bad_argument(call, error, match):
    z, y = _batch(dtype=torch.float32)
    with pytest.raises(error, match=match):
        call(z, y.float())


# --- bad inputs -------------------------------------------------------------------------------

Z, Y = _batch(dtype=torch.float32)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: AsymmetricLoss(gamma_neg=-1), "`gamma_neg` must be a finite real number >= 0"),
        (
            lambda: AsymmetricLoss(gamma_pos=math.nan),
            "`gamma_pos` must be a finite real number >= 0",
        ),
        (lambda: AsymmetricLoss(clip=1.0), r"`clip` must be a finite real number in \[0, 1\)"),
        (
            lambda: AsymmetricLoss(eps=0.0),
            r"`eps` must be a finite real number in \[1.17549e-38, 1\)",
        ),
        (lambda: AsymmetricLoss(unknown="zero"), "`unknown` must be one of"),
        (lambda: ltml.BCE(unknown="skip"), "`unknown` must be one of"),
        (lambda: LF.asymmetric_loss(Z, Y, reduction="avg"), "`reduction` must be one of"),
        (lambda: LF.asymmetric_loss(Z, Y, weight=torch.ones(3)), r"`weight` must have 4 entries"),
        (
            lambda: MultiFocalModifierLoss([1, 2, 3, 4], torch.ones(3, 3)),
            r"`cooccurrence` must have shape \(4, 4\)",
        ),
        (
            lambda: LF.multi_focal_modifier_loss(Z, Y, [1, 2, 3, 4], torch.ones(4, 3)),
            r"`cooccurrence` must have shape \(4, 4\)",
        ),
        (
            lambda: MultiFocalModifierLoss([1, 2, 3, 4], neg_boost=0.5),
            "`neg_boost` must be a finite real number >= 1",
        ),
        (lambda: MultiFocalModifierLoss([1, 2, 3])(Z, Y), "`logits` must have 3 columns"),
        (
            lambda: ReflectiveLabelCorrector([1, 2], tau=1.0),
            r"`tau` must be a finite real number in \(0, 1\)",
        ),
        (lambda: ReflectiveLabelCorrector([1, 2], threshold="max"), "`threshold` must be"),
        (
            lambda: ReflectiveLabelCorrector([1, 2], momentum=1.0),
            r"`momentum` must be a finite real number in \[0, 1\)",
        ),
        (lambda: ReflectiveLabelCorrector([1, 2], candidates="all"), "`candidates` must be"),
        (
            lambda: ReflectiveLabelCorrector([1, 2], margin=-1),
            "`margin` must be a finite real number >= 0",
        ),
        (lambda: LF.reflective_label_correction(Z, Y, 0.5, candidates="x"), "`candidates`"),
        (
            lambda: LF.reflective_label_correction(Z, Y, torch.ones(3)),
            r"`threshold` must have 4 entries \(one per class\)",
        ),
        (lambda: LF.reflective_label_correction(Z, Y[:2], 0.5), "must have the same shape"),
        (
            lambda: ReflectiveLabelCorrector([1, 2], start_epoch=-1),
            "`start_epoch` must be an integer >= 0",
        ),
        (
            lambda: ReflectiveLabelCorrector([1, 2], weight_power=-0.5),
            "`weight_power` must be a finite real number >= 0",
        ),
        (lambda: ReflectiveLabelCorrector([1, 2, 3])(Z, Y), "`logits` must have 3 columns"),
        (
            lambda: ReflectiveLabelCorrector([1, 2, 3, 4])(Z, Y.float() / 2),
            r"\(the Reflective Label Corrector needs 0 / 1 labels",
        ),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_public_exports():
    for name in ("AsymmetricLoss", "MultiFocalModifierLoss", "ReflectiveLabelCorrector"):
        assert getattr(ltml, name) is getattr(ltml.losses, name)
    assert np.array_equal(ltml.data.cooccurrence(TRAIN.numpy()).numpy(), cooccurrence(TRAIN))
