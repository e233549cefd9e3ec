"""The loss family as modules and functionals: each module is its functional, to the bit.

Every module of :mod:`ltml.losses` gives what its functional gives with the module's state
(values and gradients, compared with ``torch.equal``); BCE, FocalLoss and AsymmetricLoss take the
functional's per-class ``weight``; :func:`ltml.losses.db_statistics` against a transcription;
the old homes of every name still import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import ltml
import ltml.functional as LF
import ltml.functional.losses
import ltml.schedules
from ltml.data import cooccurrence
from ltml.losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DeferredReweightedBCE,
    DistributionBalancedLoss,
    FocalLoss,
    LogitCompensatedBCE,
    MultiFocalModifierLoss,
    ReflectiveLabelCorrector,
    WeightedBCE,
    db_statistics,
)

COUNTS = [40, 12, 3, 1]
N_TRAIN = 60
TRAIN = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])
W = torch.tensor([0.5, 2.0, 1.25, 0.0])
W2 = torch.stack([W, torch.tensor([1.0, 0.25, 3.0, 0.75])])


def _batch(seed: int = 0) -> tuple[Tensor, Tensor]:
    """float32 logits in [-5, 5] and 0 / 1 targets with a few -1."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(7, 4, generator=g) * 10 - 5
    y = (torch.rand(7, 4, generator=g) < 0.4).long()
    y[0, 0], y[1, 2], y[3, 0] = 1, -1, -1
    return z, y


def _value_and_grad(fn: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    a = z.clone().requires_grad_(True)
    out = fn(a)
    (grad,) = torch.autograd.grad(out.sum(), a)
    return out.detach(), grad


def _assert_same(module: Callable[[Tensor], Tensor], functional: Callable[[Tensor], Tensor]):
    z, _ = _batch()
    got, grad = _value_and_grad(module, z)
    expected, grad_expected = _value_and_grad(functional, z)
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)
    assert torch.equal(grad, grad_expected)


# --- each module is its functional --------------------------------------------------------------


def _compensated(r: str, u: str) -> LogitCompensatedBCE:
    loss = LogitCompensatedBCE(COUNTS, N_TRAIN, reduction=r, unknown=u)
    with torch.no_grad():
        for i, p in enumerate(loss.parameters()):
            p.copy_(torch.linspace(0.5, 1.5, 4) * (-1) ** i)
    return loss


# name -> (module, functional with the module's state)
PAIRS: dict[str, tuple[Callable[[str, str], nn.Module], Callable[..., Tensor]]] = {
    "bce": (
        lambda r, u: BCE(r, u),
        lambda m, z, y: LF.bce(z, y, reduction=m.reduction, unknown=m.unknown),
    ),
    "weighted_bce": (
        lambda r, u: WeightedBCE(COUNTS, power=0.5, reduction=r, unknown=u),
        lambda m, z, y: LF.bce(z, y, m.weight, reduction=m.reduction, unknown=m.unknown),
    ),
    "focal": (
        lambda r, u: FocalLoss(1.5, 0.25, r, u),
        lambda m, z, y: LF.focal_loss(
            z, y, gamma=1.5, alpha=0.25, reduction=m.reduction, unknown=m.unknown
        ),
    ),
    "cb_focal": (
        lambda r, u: ClassBalancedFocalLoss(COUNTS, beta=0.99, gamma=0.5, reduction=r, unknown=u),
        lambda m, z, y: LF.focal_loss(
            z, y, gamma=0.5, weight=m.weight, reduction=m.reduction, unknown=m.unknown
        ),
    ),
    "db": (
        lambda r, u: DistributionBalancedLoss(
            COUNTS, N_TRAIN, preset="coco", reduction=r, unknown=u
        ),
        lambda m, z, y: LF.distribution_balanced_loss(
            z, y, COUNTS, N_TRAIN, mu=0.2, neg_scale=2.0, reduction=m.reduction, unknown=m.unknown
        ),
    ),
    "lcbce": (
        _compensated,
        lambda m, z, y: LF.logit_compensated_bce(
            z, y, COUNTS, N_TRAIN, *m.compensation(), reduction=m.reduction, unknown=m.unknown
        ),
    ),
    "lcbce_tied": (
        lambda r, u: LogitCompensatedBCE(COUNTS, N_TRAIN, guard="tied", reduction=r, unknown=u),
        lambda m, z, y: LF.logit_compensated_bce(
            z, y, COUNTS, N_TRAIN, *m.compensation(), reduction=m.reduction, unknown=m.unknown
        ),
    ),
    "asl": (
        lambda r, u: AsymmetricLoss(
            1.0, 2.0, 0.1, detach_focal_weight=True, reduction=r, unknown=u
        ),
        lambda m, z, y: LF.asymmetric_loss(
            z,
            y,
            gamma_pos=1.0,
            gamma_neg=2.0,
            clip=0.1,
            detach_focal_weight=True,
            reduction=m.reduction,
            unknown=m.unknown,
        ),
    ),
    "mfm": (
        lambda r, u: MultiFocalModifierLoss.from_labels(
            TRAIN, neg_boost=1.2, reduction=r, unknown=u
        ),
        lambda m, z, y: LF.multi_focal_modifier_loss(
            z,
            y,
            TRAIN.sum(0),
            cooccurrence(TRAIN),
            neg_boost=1.2,
            reduction=m.reduction,
            unknown=m.unknown,
        ),
    ),
    "drw_inactive": (
        lambda r, u: DeferredReweightedBCE(W, 1, reduction=r, unknown=u),
        lambda m, z, y: LF.bce(z, y, reduction=m.reduction, unknown=m.unknown),
    ),
    "drw_active": (
        lambda r, u: DeferredReweightedBCE(W, 0, reduction=r, unknown=u),
        lambda m, z, y: LF.bce(z, y, W, reduction=m.reduction, unknown=m.unknown),
    ),
}


@pytest.mark.parametrize("unknown", ["ignore", "negative"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_module_is_its_functional(name: str, reduction: str, unknown: str) -> None:
    make, functional = PAIRS[name]
    module = make(reduction, unknown)
    # the functional reads the module's settings: they must be the ones given
    assert (module.reduction, module.unknown) == (reduction, unknown)
    _, y = _batch()
    _assert_same(lambda z: module(z, y), lambda z: functional(module, z, y))


@pytest.mark.parametrize("space", ["prob", "logit"])
@pytest.mark.parametrize("detach", [None, "first", "second"])
def test_consistency_module_is_its_functional(space: str, detach: str | None) -> None:
    module = CrossBranchConsistency(space, detach, reduction="none")  # type: ignore[arg-type]
    other = _batch(1)[0]

    def pair(z: Tensor) -> tuple[Tensor, Tensor]:  # z where its gradient is not stopped
        return (other, z) if detach == "first" else (z, other)

    _assert_same(
        lambda z: module(*pair(z)),
        lambda z: LF.cross_branch_consistency(
            *pair(z),
            space=space,  # type: ignore[arg-type]
            detach=detach,  # type: ignore[arg-type]
            reduction="none",
        ),
    )


@pytest.mark.parametrize("candidates", ["unknown", "unobserved"])
def test_corrector_is_the_correction_then_the_mfm_loss(candidates: str) -> None:
    """Its targets: the functional correction; its loss: MFM's on them, with its class counts."""
    corrector = ReflectiveLabelCorrector(
        [30, 10, 2, 5], start_epoch=0, tau=0.6, candidates=candidates, margin=0.5, gamma_pos=0.5
    ).eval()  # no update of the running mean and the pseudo-counts: a pure function
    z, y = _batch()
    a = z.clone().requires_grad_(True)
    out = corrector(a, y)
    (grad,) = torch.autograd.grad(out.loss, a)
    b = z.clone().requires_grad_(True)
    shifted = torch.where(y > 0, b - 0.5, b)
    corrected = LF.reflective_label_correction(shifted, y, 0.6, candidates=candidates)
    loss = LF.multi_focal_modifier_loss(
        shifted, corrected, [30, 10, 2, 5], gamma_pos=0.5, weight_power=1 / 6
    )
    (grad_expected,) = torch.autograd.grad(loss, b)
    assert torch.equal(out.targets, corrected)
    assert torch.equal(out.loss, loss)
    assert torch.equal(grad, grad_expected)


# --- per-class weight of BCE, FocalLoss and AsymmetricLoss ---------------------------------------

WEIGHTED = {
    "bce": (lambda w, r: BCE(r, weight=w), lambda z, y, w, r: LF.bce(z, y, w, reduction=r)),
    "focal": (
        lambda w, r: FocalLoss(0.5, 0.25, r, weight=w),
        lambda z, y, w, r: LF.focal_loss(z, y, gamma=0.5, alpha=0.25, weight=w, reduction=r),
    ),
    "asl": (
        lambda w, r: AsymmetricLoss(1.0, weight=w, reduction=r),
        lambda z, y, w, r: LF.asymmetric_loss(z, y, gamma_pos=1.0, weight=w, reduction=r),
    ),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [W, W2, W.tolist()], ids=["per_class", "pos_neg", "list"])
@pytest.mark.parametrize("name", list(WEIGHTED))
def test_module_weight_is_the_functional_weight(name: str, weight, reduction: str) -> None:
    make, functional = WEIGHTED[name]
    module = make(weight, reduction)
    _, y = _batch()
    _assert_same(lambda z: module(z, y), lambda z: functional(z, y, weight, reduction))
    # and the weight matters: not the unweighted loss
    assert not torch.equal(module(_batch()[0], y), make(None, reduction)(_batch()[0], y))


@pytest.mark.parametrize("name", list(WEIGHTED))
def test_module_weight_is_a_float32_buffer_in_the_repr(name: str) -> None:
    make, functional = WEIGHTED[name]
    module = make(W.double(), "mean")
    assert module.weight.dtype == torch.float32
    assert torch.equal(module.state_dict()["weight"], W)
    assert "weight=tensor of shape (4,)" in repr(module)
    unweighted = make(None, "mean")
    assert unweighted.weight is None
    assert "weight" not in unweighted.state_dict()
    assert "weight=None" in repr(unweighted)
    # .to(float64) moves the buffer; float64 logits then get float64 weights
    z, y = _batch()
    got = module.to(torch.float64)(z.double(), y)
    assert torch.equal(got, functional(z.double(), y, W.double(), "mean"))
    # a checkpoint restores the weight
    fresh = make(torch.ones(4), "mean")
    fresh.load_state_dict(make(W, "mean").state_dict())
    assert torch.equal(fresh.weight, W)


@pytest.mark.parametrize(
    ("weight", "error", "match"),
    [
        (torch.ones(3, 4), ValueError, r"`weight` must have shape \(C,\) or \(2, C\) .*\(3, 4\)$"),
        (torch.ones(2, 0), ValueError, r"`weight` must have shape \(C,\) or \(2, C\)"),
        (torch.ones(2, 2, 2), ValueError, r"`weight` must be a non-empty 1-D vector"),
        ([], ValueError, r"`weight` must be a non-empty 1-D vector"),
        ([[1.0, 2.0]], TypeError, r"`weight` must be a sequence of real numbers"),
        ("1", TypeError, r"`weight` must be a tensor, array or sequence of real numbers"),
        (torch.ones(4, dtype=torch.bool), TypeError, r"`weight` must hold real numbers"),
        (torch.ones(2, 4, dtype=torch.bool), TypeError, r"`weight` must hold real numbers"),
        (torch.ones(2, 4, dtype=torch.complex64), TypeError, r"`weight` must hold real numbers"),
        ([1.0, -0.5], ValueError, r"`weight` must be non-negative, got -0.5$"),
        ([1.0, math.nan], ValueError, r"`weight` must be finite"),
        (torch.tensor([[1.0, math.inf]] * 2), ValueError, r"`weight` must be finite"),
    ],
)
@pytest.mark.parametrize("name", list(WEIGHTED))
def test_bad_module_weight_is_refused_by_name(name: str, weight, error, match) -> None:
    with pytest.raises(error, match=match):
        WEIGHTED[name][0](weight, "mean")


@pytest.mark.parametrize("name", list(WEIGHTED))
def test_module_weight_of_one_class_in_both_forms(name: str) -> None:
    z, y = _batch()
    for weight in (W[:1], W2[:, :1]):  # (1,) and (2, 1): a one-class problem
        module = WEIGHTED[name][0](weight, "sum")
        expected = WEIGHTED[name][1](z[:, :1], y[:, :1], weight, "sum")
        torch.testing.assert_close(module(z[:, :1], y[:, :1]), expected)


@pytest.mark.parametrize("name", list(WEIGHTED))
def test_module_weight_fixes_the_number_of_classes(name: str) -> None:
    z, y = _batch()
    for weight in (W[:3], W2[:, :3]):
        with pytest.raises(ValueError, match=r"`logits` must have 3 columns \(num_classes\)"):
            WEIGHTED[name][0](weight, "mean")(z, y)


# --- db_statistics --------------------------------------------------------------------------------


def _ref_db_statistics(counts: list[int], n: int, kappa: float, lam: float):
    """Wu et al. (ECCV 2020): inverse frequency (mean 1) and b_k = -(κ/λ) log(N / n_k - 1)."""
    clamped = [min(max(c, 1), n - 1) for c in counts]
    inv = [1 / c for c in clamped]
    mean = sum(inv) / len(inv)
    bias = [-(kappa / lam) * math.log(n / c - 1) for c in clamped]
    return torch.tensor([v / mean for v in inv]), torch.tensor(bias)


@pytest.mark.parametrize(
    ("counts", "n", "kappa", "lam"),
    [(COUNTS, N_TRAIN, 0.05, 5.0), ([90, 10, 50], 100, 0.3, 2.0), ([0, 60, 7], 60, 0.05, 0.5)],
)
def test_db_statistics_match_transcription(counts, n, kappa, lam) -> None:
    inv_freq, bias = db_statistics(counts, n, kappa=kappa, neg_scale=lam)
    ref_inv, ref_bias = _ref_db_statistics(counts, n, kappa, lam)
    assert inv_freq.dtype == bias.dtype == torch.float32
    assert inv_freq.shape == bias.shape == (len(counts),)
    torch.testing.assert_close(inv_freq, ref_inv, rtol=1e-6, atol=0)
    torch.testing.assert_close(bias, ref_bias, rtol=1e-6, atol=1e-9)


def test_db_statistics_defaults_clamping_and_the_modules_buffers() -> None:
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            db_statistics(COUNTS, N_TRAIN),
            db_statistics(COUNTS, N_TRAIN, kappa=0.05, neg_scale=5.0),  # the VOC-LT values
            strict=True,
        )
    )
    # a class with no positive (or no negative) reads as one with 1 (or N - 1)
    for a, b in zip(db_statistics([0, 60, 7], 60), db_statistics([1, 59, 7], 60), strict=True):
        assert torch.equal(a, b)
        assert bool(torch.isfinite(a).all())
    module = DistributionBalancedLoss(COUNTS, N_TRAIN, kappa=0.2, preset="coco")
    inv_freq, bias = db_statistics(COUNTS, N_TRAIN, kappa=0.2, neg_scale=2.0)
    assert torch.equal(module.inv_freq, inv_freq)
    assert torch.equal(module.bias, bias)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: db_statistics(COUNTS, 1), ValueError, r"`num_images` must be an integer >= 2"),
        (lambda: db_statistics(COUNTS, 6.0), TypeError, r"`num_images` must be an integer"),
        (lambda: db_statistics([61, 1], 60), ValueError, r"`class_counts` cannot exceed"),
        (lambda: db_statistics([-1, 1], 60), ValueError, r"`class_counts` must be non-negative"),
        (lambda: db_statistics([[1, 2]], 60), TypeError, r"`class_counts` must be a sequence"),
        (
            lambda: db_statistics(COUNTS, N_TRAIN, kappa=-0.1),
            ValueError,
            r"`kappa` must be a finite real number >= 0, got -0.1$",
        ),
        (
            lambda: db_statistics(COUNTS, N_TRAIN, neg_scale=0.0),
            ValueError,
            r"`neg_scale` must be a finite real number > 0, got 0.0$",
        ),
    ],
)
def test_db_statistics_bad_inputs(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- where the names live ------------------------------------------------------------------------


def test_old_homes_keep_every_name() -> None:
    functional = [
        "Reduction",
        "Unknown",
        "asymmetric_loss",
        "bce",
        "cross_branch_consistency",
        "distribution_balanced_loss",
        "focal_loss",
        "head_tail_balance_loss",
        "hill_loss",
        "logit_compensated_bce",
        "multi_focal_modifier_loss",
        "reflective_label_correction",
        "splc_loss",
    ]
    assert ltml.functional.losses.__all__ == functional
    for name in functional:
        assert getattr(ltml.functional.losses, name) is getattr(LF, name)
    for name in ("Reduction", "Unknown"):
        assert getattr(ltml.losses, name) is getattr(LF, name)
    assert set(ltml.losses.__all__) >= {
        "BCE",
        "AsymmetricLoss",
        "ClassBalancedFocalLoss",
        "CorrectorOutput",
        "CrossBranchConsistency",
        "DistributionBalancedLoss",
        "FocalLoss",
        "LTMLLoss",
        "LTMLLossOutput",
        "LogitCompensatedBCE",
        "MultiFocalModifierLoss",
        "ReflectiveLabelCorrector",
        "WeightedBCE",
        "db_statistics",
    }
    assert ltml.schedules.DeferredReweightedBCE is ltml.losses.DeferredReweightedBCE
    assert ltml.DeferredReweightedBCE is ltml.losses.DeferredReweightedBCE
    assert ltml.schedules.__all__ == ["DeferredClassAwareSampler", "DeferredReweightedBCE"]
