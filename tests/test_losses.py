"""Tests of ltml.losses / the losses of ltml.functional.

Every loss is checked against a literal, per-element Python transcription of its published
equation (forward and autograd gradient), with gradcheck, and against the defects seen in other
implementations: in-place changes to the caller's logits, ``reduction`` ignored on some path,
device / dtype assumptions, class statistics that only load from a file, NaN for empty classes.
"""

from __future__ import annotations

import functools
import math
import types
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ltml
from ltml import functional as LF
from ltml.data import cooccurrence
from ltml.losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DistributionBalancedLoss,
    FocalLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    MultiFocalModifierLoss,
    WeightedBCE,
)
from ltml.losses import _core as loss_core

COUNTS = [40, 12, 3, 1]
N_TRAIN = 60
REDUCTIONS = ["mean", "sum", "none"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(n: int = 6, c: int = 4, *, seed: int = 0, unknown: bool = True, dtype=torch.float64):
    """Logits in [-4, 4] and 0/1 targets, with a few -1 when ``unknown``."""
    g = _gen(seed)
    logits = (torch.rand(n, c, generator=g, dtype=torch.float64) * 8 - 4).to(dtype)
    targets = (torch.rand(n, c, generator=g) < 0.4).long()
    targets[0, 0] = 1  # every image below has a positive unless told otherwise
    if unknown:
        targets[1, 2] = -1
        targets[3, 0] = -1
    return logits, targets


# --- literal transcriptions of the published equations (slow loops, naive formulas) ----------


def _sig(x: Tensor) -> Tensor:
    return 1 / (1 + torch.exp(-x))


def ref_bce(z: Tensor, y: Tensor, w: list[float] | None = None) -> Tensor:
    out = torch.zeros_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            if y[i, k] < 0:
                continue
            wk = 1.0 if w is None else w[k]
            p = _sig(z[i, k])
            out[i, k] = -wk * (y[i, k] * torch.log(p) + (1 - y[i, k]) * torch.log(1 - p))
    return out


def ref_focal(z, y, gamma=2.0, alpha=None, w=None) -> Tensor:
    out = torch.zeros_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            if y[i, k] < 0:
                continue
            p = _sig(z[i, k])
            pt = p if y[i, k] == 1 else 1 - p
            at = 1.0 if alpha is None else (alpha if y[i, k] == 1 else 1 - alpha)
            wk = 1.0 if w is None else w[k]
            out[i, k] = -wk * at * (1 - pt) ** gamma * torch.log(pt)
    return out


def ref_lcbce(z, y, counts, n, sp, mp, sn, mn, *, omega32=False) -> Tensor:
    """Guo & Wang, Eq. 2 (per element, before the 1/K sum); ``omega32``: the weights rounded to
    float32, as the losses hold them."""
    out = torch.zeros_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            if y[i, k] < 0:
                continue
            p = counts[k] / n
            yk = float(y[i, k])
            omega = yk * math.exp(1 - p) + (1 - yk) * math.exp(p)
            if omega32:
                omega = float(np.float32(omega))
            pos = yk * torch.log(_sig(z[i, k] * sp[k] + mp[k]))
            neg = (1 - yk) * torch.log(1 - _sig(z[i, k] * sn[k] + mn[k]))
            out[i, k] = -omega * (pos + neg)
    return out


def ref_db(z, y, counts, n, *, alpha, beta, mu, kappa, lam, gamma, scale) -> Tensor:
    """Wu et al. (ECCV 2020): re-balanced weight, negative-tolerant regularisation, focal."""
    out = torch.zeros_like(z)
    for i in range(z.shape[0]):
        repeat = sum(1 / counts[j] for j in range(z.shape[1]) if y[i, j] == 1)
        for k in range(z.shape[1]):
            if y[i, k] < 0:
                continue
            r = (1 / counts[k]) / repeat if repeat > 0 else math.inf
            # beta = 0: the sigmoid is 1/2 whatever r, infinite (no known positive) or not
            w = alpha + (1 / (1 + math.exp(-beta * (r - mu))) if beta else 0.5)
            b = -(kappa / lam) * math.log(n / counts[k] - 1)
            if y[i, k] == 1:
                p = _sig(z[i, k] + b)
                out[i, k] = -scale * w * (1 - p) ** gamma * torch.log(p)
            else:
                q = _sig(lam * (z[i, k] + b))  # 1 - p_t
                out[i, k] = -scale * (w / lam) * q**gamma * torch.log(1 - q)
    return out


def ref_asl(z, y, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, eps=1e-8) -> Tensor:
    """Ridnik et al. (ICCV 2021): shifted negatives, asymmetric focusing, clamped logs."""
    out = torch.zeros_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            if y[i, k] < 0:
                continue
            p = _sig(z[i, k])
            if y[i, k] == 1:
                out[i, k] = -((1 - p) ** gamma_pos) * torch.log(torch.clamp(p, min=eps))
            else:
                pm = torch.clamp(p - clip, min=0.0)
                out[i, k] = -(pm**gamma_neg) * torch.log(torch.clamp(1 - pm, min=eps))
    return out


MFM_TRAIN = [[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1], [1, 1, 0, 0]]


def ref_mfm(z, y, train=MFM_TRAIN, gamma_neg=3.0, clip=0.05, power=1 / 3) -> Tensor:
    """COMIC's Multi-Focal Modifier loss (gamma+ = 0), per element, from the training labels."""
    c = len(train[0])
    n = [sum(row[k] for row in train) for k in range(c)]
    w = [(1 - math.log(n[k] / max(n))) ** power for k in range(c)]
    co = [[sum(r[j] * r[k] for r in train) for k in range(c)] for j in range(c)]
    col = [sum(co[j][k] for j in range(c)) for k in range(c)]
    out = torch.zeros_like(z)
    for i in range(z.shape[0]):
        positives = [j for j in range(c) if y[i, j] == 1]
        a = [sum(co[j][k] / col[k] for j in positives) for k in range(c)]
        a = [v / sum(a) for v in a] if sum(a) > 0 else [0.0] * c
        for k in range(c):
            if y[i, k] < 0:
                continue
            p = _sig(z[i, k])
            if y[i, k] == 1:
                out[i, k] = -w[k] * torch.log(p * (1 - a[k]))
            else:
                pm = torch.clamp(p - clip, min=0.0)
                out[i, k] = -w[k] * pm ** (gamma_neg + w[k]) * torch.log(1 - pm)
    return out


def ref_consistency(a, b, space) -> Tensor:
    out = torch.zeros_like(a)
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            x, v = (a[i, k], b[i, k]) if space == "logit" else (_sig(a[i, k]), _sig(b[i, k]))
            out[i, k] = (x - v) ** 2
    return out


def ref_reduce(elements: Tensor, y: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return elements
    if reduction == "sum":
        return elements.sum()
    return elements.sum() / (y >= 0).sum()


# --- the cases: a module, its functional twin and its transcription ---------------------------

SP = [1.3, 0.7, 1.1, 0.4]
MP = [0.2, -0.5, 0.9, 0.0]
SN = [0.8, 1.4, 1.0, 2.0]
MN = [-0.3, 0.1, 0.0, 0.6]


def _lcbce(reduction: str) -> nn.Module:
    loss = LogitCompensatedBCE(COUNTS, N_TRAIN, reduction=reduction)
    with torch.no_grad():
        for name, v in zip(
            ("sigma_pos", "mu_pos", "sigma_neg", "mu_neg"), (SP, MP, SN, MN), strict=True
        ):
            getattr(loss, name).copy_(torch.tensor(v))
    return loss


def _inv_freq_weights() -> list[float]:
    w = [1 / c for c in COUNTS]
    return [x * len(w) / sum(w) for x in w]


def _cb_weights(beta: float) -> list[float]:
    w = [(1 - beta) / (1 - beta**c) for c in COUNTS]
    return [x * len(w) / sum(w) for x in w]


DB_KW = {"alpha": 0.1, "beta": 10.0, "mu": 0.3, "kappa": 0.05, "gamma": 2.0, "scale": 2.0}


@dataclass
class Case:
    make: Callable[[str], nn.Module]
    functional: Callable[[Tensor, Tensor, str], Tensor]
    ref: Callable[[Tensor, Tensor], Tensor]


CASES = {
    "bce": Case(BCE, lambda z, y, r: LF.bce(z, y, reduction=r), ref_bce),
    "weighted_bce": Case(
        lambda r: WeightedBCE(COUNTS, reduction=r),
        lambda z, y, r: LF.bce(z, y, torch.tensor(_inv_freq_weights()), reduction=r),
        lambda z, y: ref_bce(z, y, _inv_freq_weights()),
    ),
    "focal": Case(
        lambda r: FocalLoss(gamma=2.0, alpha=0.25, reduction=r),
        lambda z, y, r: LF.focal_loss(z, y, gamma=2.0, alpha=0.25, reduction=r),
        lambda z, y: ref_focal(z, y, 2.0, 0.25),
    ),
    "cb_focal": Case(
        lambda r: ClassBalancedFocalLoss(COUNTS, beta=0.99, gamma=1.5, reduction=r),
        lambda z, y, r: LF.focal_loss(
            z, y, gamma=1.5, weight=torch.tensor(_cb_weights(0.99)), reduction=r
        ),
        lambda z, y: ref_focal(z, y, 1.5, None, _cb_weights(0.99)),
    ),
    "db_voc": Case(
        lambda r: DistributionBalancedLoss(COUNTS, N_TRAIN, reduction=r),
        lambda z, y, r: LF.distribution_balanced_loss(z, y, COUNTS, N_TRAIN, reduction=r),
        lambda z, y: ref_db(z, y, COUNTS, N_TRAIN, lam=5.0, **DB_KW),
    ),
    "db_coco": Case(
        lambda r: DistributionBalancedLoss(COUNTS, N_TRAIN, preset="coco", reduction=r),
        lambda z, y, r: LF.distribution_balanced_loss(
            z, y, COUNTS, N_TRAIN, mu=0.2, neg_scale=2.0, reduction=r
        ),
        lambda z, y: ref_db(z, y, COUNTS, N_TRAIN, lam=2.0, **{**DB_KW, "mu": 0.2}),
    ),
    "lcbce": Case(
        _lcbce,
        lambda z, y, r: LF.logit_compensated_bce(
            z, y, COUNTS, N_TRAIN, *map(torch.tensor, (SP, MP, SN, MN)), reduction=r
        ),
        lambda z, y: ref_lcbce(z, y, COUNTS, N_TRAIN, SP, MP, SN, MN),
    ),
    "asl": Case(
        lambda r: AsymmetricLoss(clip=0.01, reduction=r),
        lambda z, y, r: LF.asymmetric_loss(z, y, clip=0.01, reduction=r),
        lambda z, y: ref_asl(z, y, clip=0.01),
    ),
    "mfm": Case(
        lambda r: MultiFocalModifierLoss.from_labels(torch.tensor(MFM_TRAIN), reduction=r),
        lambda z, y, r: LF.multi_focal_modifier_loss(
            z, y, [5, 3, 1, 1], cooccurrence(torch.tensor(MFM_TRAIN)), reduction=r
        ),
        ref_mfm,
    ),
}
CASE_IDS = list(CASES)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CASE_IDS)
def test_matches_transcription(name, reduction):
    case = CASES[name]
    z, y = _batch()
    z_ref = z.clone().requires_grad_(True)
    expected = ref_reduce(case.ref(z_ref, y), y, reduction)
    module = case.make(reduction).to(torch.float64)
    for fn in (lambda a: module(a, y), lambda a: case.functional(a, y, reduction)):
        zz = z.clone().requires_grad_(True)
        got = fn(zz)
        assert got.shape == expected.shape
        # Class statistics are float32 buffers (as any module's): float32-level agreement.
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
        (g,) = torch.autograd.grad(got.sum(), zz)
        (g_ref,) = torch.autograd.grad(expected.sum(), z_ref, retain_graph=True)
        torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-9)


def test_lcbce_parameter_gradients_match_transcription():
    z, y = _batch()
    module = _lcbce("mean").to(torch.float64)
    loss = module(z, y)
    loss.backward()
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (SP, MP, SN, MN)]
    expected = ref_reduce(ref_lcbce(z, y, COUNTS, N_TRAIN, *params), y, "mean")
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for name, p in zip(("sigma_pos", "mu_pos", "sigma_neg", "mu_neg"), params, strict=True):
        torch.testing.assert_close(getattr(module, name).grad, p.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", CASE_IDS)
def test_gradcheck(name):
    z, y = _batch(4, 4, seed=1)
    module = CASES[name].make("sum").to(torch.float64)
    inputs = (z.requires_grad_(True), *(p for p in module.parameters()))
    for p in module.parameters():
        p.data = p.data + 0.1 * torch.randn(p.shape, generator=_gen(2), dtype=torch.float64)
    # gradcheck perturbs the parameters in place, and the module reads them from there.
    assert torch.autograd.gradcheck(lambda a, *_: module(a, y), inputs)


@pytest.mark.parametrize("guard", [None, "tied"])
@pytest.mark.parametrize("learnable", [True, False])
def test_lcbce_identity_init_is_omega_weighted_bce(guard, learnable):
    z, y = _batch(unknown=False)
    module = LogitCompensatedBCE(COUNTS, N_TRAIN, learnable=learnable, guard=guard)
    p = torch.tensor(COUNTS, dtype=torch.float64) / N_TRAIN
    omega = torch.where(y == 1, torch.exp(1 - p), torch.exp(p))
    expected = F.binary_cross_entropy_with_logits(z, y.double(), weight=omega)
    torch.testing.assert_close(module.to(torch.float64)(z, y), expected, rtol=1e-6, atol=0)
    assert len(list(module.parameters())) == (0 if not learnable else 4 if guard is None else 2)


@pytest.mark.parametrize("name", CASE_IDS)
def test_unknown_targets_contribute_nothing(name):
    z, y = _batch()
    module = CASES[name].make("sum").to(torch.float64)
    unknown = y < 0
    za = z.clone().requires_grad_(True)
    loss = module(za, y)
    loss.backward()
    assert bool((za.grad[unknown] == 0).all())
    assert bool((za.grad[~unknown] != 0).all())
    z2 = z.clone()
    z2[unknown] = 50.0  # what an unknown element's logit is does not matter
    torch.testing.assert_close(module(z2, y), loss.detach(), rtol=1e-12, atol=0)
    elements = CASES[name].make("none").to(torch.float64)(z, y)
    assert bool((elements[unknown] == 0).all())
    # Mean is over known elements only; with none known it is 0, not NaN.
    all_unknown = torch.full_like(y, -1)
    assert CASES[name].make("mean")(z.float(), all_unknown).item() == 0.0


@pytest.mark.parametrize("name", CASE_IDS)
def test_extreme_logits_are_finite(name):
    z = torch.tensor([[100.0, -100.0, 100.0, -100.0], [-100.0, 100.0, 30.0, -30.0]])
    y = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]])
    for dtype in (torch.float32, torch.float64):
        zz = z.to(dtype).clone().requires_grad_(True)
        loss = CASES[name].make("mean").to(dtype)(zz, y)
        loss.backward()
        assert torch.isfinite(loss)
        assert bool(torch.isfinite(zz.grad).all())
        assert loss.item() > 1.0  # the confidently wrong elements dominate, unsaturated


@pytest.mark.parametrize("name", CASE_IDS)
def test_autocast_bf16_computes_in_float32(name):
    x, y = _batch(8, 4, seed=3, unknown=True, dtype=torch.float32)
    linear = nn.Linear(4, 4)
    module = CASES[name].make("mean")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = linear(x)
        loss = module(logits, y)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, module(logits.detach().float(), y), rtol=1e-6, atol=0)
    loss.backward()
    assert bool(torch.isfinite(linear.weight.grad).all())


@pytest.mark.parametrize("name", CASE_IDS)
def test_inputs_unchanged_and_dtype_follows_module(name):
    z, y = _batch(dtype=torch.float32)
    z_before, y_before = z.clone(), y.clone()
    module = CASES[name].make("mean")
    zz = z.requires_grad_(True)
    module(zz, y).backward()
    assert torch.equal(z.detach(), z_before)
    assert torch.equal(y, y_before)
    module64 = module.to(torch.float64)
    assert all(t.dtype == torch.float64 for t in (*module64.parameters(), *module64.buffers()))
    assert module64(z_before.double(), y).dtype == torch.float64


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("weighted_bce", lambda: WeightedBCE([1, 1, 1, 1])),
        ("cb_focal", lambda: ClassBalancedFocalLoss([1, 1, 1, 1], gamma=1.5)),
        ("db_voc", lambda: DistributionBalancedLoss([1, 1, 1, 1], N_TRAIN)),
        ("lcbce", lambda: LogitCompensatedBCE([1, 1, 1, 1], N_TRAIN)),
    ],
)
def test_state_dict_round_trip(name, other):
    z, y = _batch()
    module = CASES[name].make("mean").to(torch.float64)
    # A copy built from other statistics gets the saved ones back from the state dict.
    other = other()
    other.load_state_dict(module.state_dict())
    torch.testing.assert_close(other.to(torch.float64)(z, y), module(z, y))


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (WeightedBCE, ()),
        (ClassBalancedFocalLoss, ()),
        (DistributionBalancedLoss, (6,)),
        (LogitCompensatedBCE, (6,)),
    ],
)
def test_from_labels_equals_counts(cls, args):
    labels = torch.tensor([[1, 0, 0], [1, 1, -1], [1, 0, 0], [0, 1, 0], [1, 0, 1], [0, -1, 0]])
    a = cls.from_labels(labels.numpy())
    b = cls([4, 2, 1], *args)
    for x, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, v)


def test_statistics_from_real_labels(voc_lt):
    labels, split = voc_lt
    loss = LogitCompensatedBCE.from_labels(labels)
    p = torch.tensor(split["class_freq"], dtype=torch.float64) / split["num_images"]
    torch.testing.assert_close(loss.weight, torch.stack([torch.exp(1 - p), torch.exp(p)]).float())


def test_weights_literal():
    torch.testing.assert_close(WeightedBCE([300, 100]).weight, torch.tensor([0.5, 1.5]))
    # Square-root inverse frequency: 1/sqrt(400) : 1/sqrt(100) = 1 : 2, mean 1.
    torch.testing.assert_close(WeightedBCE([400, 100], power=0.5).weight, torch.tensor([2, 4]) / 3)
    torch.testing.assert_close(
        ClassBalancedFocalLoss(COUNTS, beta=0.9999).weight, torch.tensor(_cb_weights(0.9999))
    )
    torch.testing.assert_close(ClassBalancedFocalLoss(COUNTS, beta=0.0).weight, torch.ones(4))


def test_zero_and_full_counts_are_clamped_not_nan():
    z, y = _batch(dtype=torch.float32)
    # A class with no positive behaves as one with a single positive; one with all N as N - 1.
    pairs = [
        (lambda c: WeightedBCE(c), [40, 12, 0, 1], [40, 12, 1, 1]),
        (lambda c: ClassBalancedFocalLoss(c), [40, 12, 0, 1], [40, 12, 1, 1]),
        (lambda c: DistributionBalancedLoss(c, N_TRAIN), [60, 12, 0, 1], [59, 12, 1, 1]),
    ]
    for make, raw, clamped in pairs:
        got = make(raw)(z, y)
        assert torch.isfinite(got)
        torch.testing.assert_close(got, make(clamped)(z, y))
    # Eq. 2 needs no clamp: p = 0 and p = 1 give finite weights.
    loss = LogitCompensatedBCE([0, 12, 60, 1], N_TRAIN)(z, y)
    assert torch.isfinite(loss)


def test_db_image_without_positive_gets_the_largest_weight():
    z = torch.zeros(1, 4, dtype=torch.float64)
    y = torch.zeros(1, 4, dtype=torch.long)
    got = DistributionBalancedLoss(COUNTS, N_TRAIN, gamma=0.0, reduction="none").double()(z, y)
    b = -(0.05 / 5) * torch.log(N_TRAIN / torch.tensor(COUNTS, dtype=torch.float64) - 1)
    expected = 2.0 * (0.1 + 1.0) / 5 * F.softplus(5 * b)  # w = alpha + 1, negatives
    torch.testing.assert_close(got[0], expected)


def test_db_presets_and_overrides():
    coco = DistributionBalancedLoss(COUNTS, N_TRAIN, preset="coco")
    assert (coco.mu, coco.neg_scale) == (0.2, 2.0)
    voc = DistributionBalancedLoss(COUNTS, N_TRAIN, mu=0.5)
    assert (voc.mu, voc.neg_scale) == (0.5, 5.0)


def test_weighted_losses_take_class_weights():
    """Every weighted loss holds exactly what ltml.class_weights gives."""
    torch.testing.assert_close(
        WeightedBCE(COUNTS, power=0.5).weight, ltml.class_weights(COUNTS, power=0.5)
    )
    torch.testing.assert_close(
        ClassBalancedFocalLoss(COUNTS, beta=0.99).weight,
        ltml.class_weights(COUNTS, method="effective_number", beta=0.99),
    )
    torch.testing.assert_close(
        LogitCompensatedBCE(COUNTS, N_TRAIN).weight,
        ltml.class_weights(COUNTS, N_TRAIN, method="omega"),
    )
    torch.testing.assert_close(
        DistributionBalancedLoss(COUNTS, N_TRAIN).inv_freq, ltml.class_weights(COUNTS)
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_positive_negative_weights_match_transcription(reduction):
    """A (2, C) weight: row 0 weighs each class's positives, row 1 its negatives."""
    z, y = _batch()
    w = torch.tensor([[2.0, 0.5, 1.0, 3.0], [0.1, 1.0, 0.0, 2.0]], dtype=torch.float64)
    out_b = torch.zeros_like(z)
    out_f = torch.zeros_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            if y[i, k] < 0:
                continue
            row = 0 if y[i, k] == 1 else 1
            out_b[i, k] = (
                w[row, k] * ref_bce(z[i : i + 1, k : k + 1], y[i : i + 1, k : k + 1])[0, 0]
            )
            at = 0.25 if y[i, k] == 1 else 0.75
            out_f[i, k] = (
                at * w[row, k] * ref_focal(z[i : i + 1, k : k + 1], y[i : i + 1, k : k + 1])[0, 0]
            )
    got_b = LF.bce(z, y, w, reduction=reduction)
    got_f = LF.focal_loss(z, y, weight=w, alpha=0.25, reduction=reduction)
    torch.testing.assert_close(got_b, ref_reduce(out_b, y, reduction))
    torch.testing.assert_close(got_f, ref_reduce(out_f, y, reduction))


def test_omega_weights_in_bce_equal_the_uncompensated_eq2():
    z, y = _batch()
    omega = ltml.class_weights(COUNTS, N_TRAIN, method="omega").double()
    expected = LF.logit_compensated_bce(z, y, COUNTS, N_TRAIN)
    torch.testing.assert_close(LF.bce(z, y, omega), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_focal_any_gamma_matches_transcription_and_saturates_finitely(gamma):
    z, y = _batch()
    zz = z.clone().requires_grad_(True)
    zr = z.clone().requires_grad_(True)
    got = LF.focal_loss(zz, y, gamma=gamma)
    expected = ref_reduce(ref_focal(zr, y, gamma), y, "mean")
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        *(torch.autograd.grad(v, a)[0] for v, a in ((got, zz), (expected, zr)))
    )
    # Saturated elements (1 - p_t = 0 in float32): finite value and gradient for any gamma.
    big = torch.tensor([[200.0, -200.0], [30.0, -90.0]], requires_grad=True)
    loss = LF.focal_loss(big, torch.tensor([[1, 0], [1, 0]]), gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss)
    assert bool(torch.isfinite(big.grad).all())


CONFIGS = [(guard, learnable) for guard in (None, "tied") for learnable in (True, False)]


@pytest.mark.parametrize("source", CONFIGS)
@pytest.mark.parametrize("target", CONFIGS)
def test_lcbce_checkpoint_loads_whatever_the_flags(source, target):
    z, y = _batch()
    a = LogitCompensatedBCE(COUNTS, N_TRAIN, guard=source[0], learnable=source[1]).double()
    b = LogitCompensatedBCE([1, 1, 1, 1], N_TRAIN, guard=target[0], learnable=target[1]).double()
    assert set(a.state_dict()) == set(b.state_dict())
    b.load_state_dict(a.state_dict())  # strict
    if source[0] == target[0]:
        with torch.no_grad():  # a trained state gives the same loss under either `learnable`
            for t in (a.sigma_pos, a.mu_pos, a.sigma_neg, a.mu_neg):
                t.add_(0.1 * torch.randn(t.shape, generator=_gen(3), dtype=t.dtype))
        b.load_state_dict(a.state_dict())
    # At the identity (or after any same-guard state), both give the same loss.
    torch.testing.assert_close(b(z, y), a(z, y))


def test_tied_compensation_is_the_positives_tensors():
    loss = LogitCompensatedBCE(COUNTS, N_TRAIN, guard="tied")
    assert loss.sigma_neg is loss.sigma_pos
    assert loss.mu_neg is loss.mu_pos
    assert [n for n, _ in loss.named_parameters()] == ["sigma_pos", "mu_pos"]
    with torch.no_grad():
        loss.sigma_pos.copy_(torch.tensor([1.0, 1.5, 0.0, 3.0]))
    sigma = loss.compensation()[0]
    c = math.log(2.0)
    expected = torch.exp(c * torch.tanh((torch.tensor([1.0, 1.5, 0.0, 3.0]) - 1) / c))
    torch.testing.assert_close(sigma, expected)
    assert bool(((sigma > 0.5) & (sigma < 2.0)).all())


@pytest.mark.parametrize(
    "call",
    [
        lambda: LogitCompensatedBCE(COUNTS, num_samples=N_TRAIN),
        lambda: DistributionBalancedLoss(COUNTS, num_samples=N_TRAIN),
        lambda: LF.logit_compensated_bce(*_batch(), COUNTS, num_samples=N_TRAIN),
        lambda: LF.distribution_balanced_loss(*_batch(), COUNTS, num_samples=N_TRAIN),
    ],
)
def test_num_samples_keyword_is_deprecated(call):
    with pytest.warns(FutureWarning, match="`num_samples` is deprecated .* use `num_images`"):
        old = call()
    assert isinstance(old, nn.Module | Tensor)


def test_num_samples_and_num_images_together_is_an_error():
    with pytest.raises(TypeError, match="got both `num_samples` \\(deprecated\\) and `num_images`"):
        LogitCompensatedBCE(COUNTS, num_images=N_TRAIN, num_samples=N_TRAIN)


def test_deprecated_keyword_gives_the_same_loss():
    z, y = _batch()
    with pytest.warns(FutureWarning):
        old = DistributionBalancedLoss(COUNTS, num_samples=N_TRAIN)
    torch.testing.assert_close(
        old(z, y), DistributionBalancedLoss(COUNTS, num_images=N_TRAIN)(z, y)
    )


# --- consistency and the total loss -------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("space", ["prob", "logit"])
def test_consistency_matches_transcription(space, reduction):
    a, _ = _batch(seed=4)
    b, _ = _batch(seed=5)
    expected = ref_reduce(ref_consistency(a, b, space), torch.zeros_like(a), reduction)
    got = CrossBranchConsistency(space, reduction=reduction)(a, b)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(
        lambda x, v: LF.cross_branch_consistency(x, v, space=space, reduction=reduction),
        (a.requires_grad_(True), b.requires_grad_(True)),
    )


@pytest.mark.parametrize("detach", [None, "first", "second"])
def test_consistency_detach(detach):
    a, _ = _batch(seed=4)
    b, _ = _batch(seed=5)
    a.requires_grad_(True)
    b.requires_grad_(True)
    CrossBranchConsistency(detach=detach)(a, b).backward()
    assert (a.grad is None) == (detach == "first")
    assert (b.grad is None) == (detach == "second")
    if detach is None:  # symmetric: equal and opposite pulls in logit-gradient terms
        sa, sb = torch.sigmoid(a), torch.sigmoid(b)
        torch.testing.assert_close(a.grad / (sa * (1 - sa)), -b.grad / (sb * (1 - sb)))


def test_ltml_loss_is_eq1():
    z = [_batch(seed=s, dtype=torch.float64)[0] for s in range(4)]
    _, y_u = _batch(seed=7)
    _, y_r = _batch(seed=8)
    cls = LogitCompensatedBCE(COUNTS, N_TRAIN).double()
    criterion = LTMLLoss(cls, weight=0.3)
    Out = namedtuple("Out", ["u", "u_hat", "r", "r_hat"])
    res = criterion(Out(*z), y_u, y_r)
    con = CrossBranchConsistency()
    expected = cls(z[0], y_u) + cls(z[2], y_r) + 0.3 * (con(z[0], z[1]) + con(z[2], z[3]))
    torch.testing.assert_close(res.total, expected)
    torch.testing.assert_close(res.con_r, con(z[2], z[3]))
    # A plain tuple in (u, u_hat, r, r_hat) order works too; the shared loss is counted once.
    torch.testing.assert_close(criterion(tuple(z), y_u, y_r).total, expected)
    assert len(list(criterion.parameters())) == 4
    separate = LTMLLoss(cls, LogitCompensatedBCE(COUNTS, N_TRAIN).double(), weight=0.0)
    assert len(list(separate.parameters())) == 8
    torch.testing.assert_close(
        separate(Out(*z), y_u, y_r).total, expected - 0.3 * (res.con_u + res.con_r)
    )


@pytest.mark.parametrize(
    ("present", "terms"),
    [
        ("u", ("cls_u",)),  # uniform branch only
        ("r", ("cls_r",)),  # re-balanced branch only
        ("u r", ("cls_u", "cls_r")),  # both branches, no consistency
        ("u u_hat r r_hat", ("cls_u", "cls_r", "con_u", "con_r")),
    ],
)
def test_ltml_loss_skips_terms_of_missing_outputs(present, terms):
    z = [_batch(seed=s, dtype=torch.float64)[0] for s in range(4)]
    _, y_u = _batch(seed=7)
    _, y_r = _batch(seed=8)
    fields = ("u", "u_hat", "r", "r_hat")
    out = [t if f in present.split() else None for f, t in zip(fields, z, strict=True)]
    res = LTMLLoss(BCE(), weight=0.5)(out, y_u if "u" in present else None, y_r)
    bce, con = BCE(), CrossBranchConsistency()
    full = {
        "cls_u": bce(z[0], y_u),
        "cls_r": bce(z[2], y_r),
        "con_u": 0.5 * con(z[0], z[1]),
        "con_r": 0.5 * con(z[2], z[3]),
    }
    torch.testing.assert_close(res.total, sum(full[t] for t in terms))
    for name in ("cls_u", "cls_r", "con_u", "con_r"):
        assert (getattr(res, name) is None) == (name not in terms)


def test_ltml_loss_defaults_and_its_own_consistency_term():
    z = [_batch(seed=s, dtype=torch.float64)[0] for s in range(4)]
    _, y_u = _batch(seed=7)
    _, y_r = _batch(seed=8)
    bce, con = BCE(), CrossBranchConsistency()
    default = LTMLLoss(bce)
    assert default.extra_repr() == "weight=0.1"
    expected = bce(z[0], y_u) + bce(z[2], y_r) + 0.1 * (con(z[0], z[1]) + con(z[2], z[3]))
    torch.testing.assert_close(default(tuple(z), y_u, y_r).total, expected, rtol=1e-12, atol=0)
    in_logits = CrossBranchConsistency("logit")
    res = LTMLLoss(bce, consistency=in_logits)(tuple(z), y_u, y_r)
    torch.testing.assert_close(res.con_r, in_logits(z[2], z[3]), rtol=0, atol=0)
    assert not torch.equal(res.con_r, con(z[2], z[3]))


def test_ltml_loss_reads_any_output_with_the_four_fields_by_name():
    # not a sequence, and a named tuple whose fields are in another order: read by name
    z = [_batch(seed=s, dtype=torch.float64)[0] for s in range(4)]
    _, y_u = _batch(seed=7)
    _, y_r = _batch(seed=8)
    criterion = LTMLLoss(BCE(), weight=0.5)
    expected = criterion(tuple(z), y_u, y_r)
    Reordered = namedtuple("Reordered", ["r_hat", "r", "u_hat", "u"])
    outputs = [
        types.SimpleNamespace(u=z[0], u_hat=z[1], r=z[2], r_hat=z[3]),
        Reordered(u=z[0], u_hat=z[1], r=z[2], r_hat=z[3]),
    ]
    for out in outputs:
        got = criterion(out, y_u, y_r)
        for a, b in zip(got, expected, strict=True):
            assert torch.equal(a, b)


def test_ltml_loss_rejects_missing_targets_and_empty_output():
    z = _batch(seed=0)[0]
    with pytest.raises(ValueError, match="`y_u` is required when the matching logits are given"):
        LTMLLoss(BCE())((z, None, None, None), None, None)
    with pytest.raises(ValueError, match="`out` must hold at least one of `u` and `r`"):
        LTMLLoss(BCE())((None, None, None, None), None, None)


# --- the degenerate direction of Eq. 2 and the guard ------------------------------------------

VOC_COUNTS = [6, 34, 8, 14, 154, 17, 249, 29, 479, 4, 240, 48, 11, 20, 775, 100, 5, 82, 7, 64]
VOC_N = 1142


def _fixed_logits_problem() -> tuple[Tensor, Tensor]:
    """VOC-LT class frequencies; weakly informative logits that are mostly negative (as early in
    training): positives ~ N(-0.5, 1), negatives ~ N(-2, 1)."""
    g = _gen(0)
    p = torch.tensor(VOC_COUNTS) / VOC_N
    y = (torch.rand(VOC_N, len(VOC_COUNTS), generator=g) < p).long()
    z = 1.5 * y + torch.randn(y.shape, generator=g) - 2.0
    return z, y


@pytest.fixture
def one_thread():
    """Element-wise work on ~20k elements gains nothing from threads, and oversubscribed
    threads are slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fit_compensation(loss: LogitCompensatedBCE, z, y, lr: float, steps: int) -> float:
    opt = torch.optim.SGD(loss.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        value = loss(z, y)
        value.backward()
        opt.step()
    return loss(z, y).item()


@functools.cache
def _best_affine_calibration() -> float:
    """Lowest Eq. 2 loss that any affine map per class, ``a_k z + b_k`` for positives and
    negatives alike, of the fixed logits reaches: per class a logistic regression of the labels
    on the logits weighted by Eq. 2's omega (scikit-learn, no penalty). A floor, computed apart
    from the code under test, for any loss decrease that does not come from better logits."""
    from sklearn.linear_model import LogisticRegression

    z, y = (t.double().numpy() for t in _fixed_logits_problem())
    p = np.asarray(VOC_COUNTS) / VOC_N
    total = 0.0
    for k in range(z.shape[1]):
        omega = np.where(y[:, k] == 1, np.exp(1 - p[k]), np.exp(p[k]))
        if np.unique(y[:, k]).size == 1:
            continue  # one label only: a map can push the loss of this class to 0
        fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
        a = fit.fit(z[:, k : k + 1], y[:, k], sample_weight=omega).decision_function(
            z[:, k : k + 1]
        )
        total += (omega * (np.logaddexp(0, a) - y[:, k] * a)).sum()  # BCE with logits
    return total / z.size


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("lr", [0.01, 0.1, 1.0])
def test_unguarded_compensation_drifts(lr):
    """Observed: with fixed logits, every mu_pos rises, every mu_neg falls, sigma_neg rises and
    sigma_pos shrinks; at lr 1 some sigma_pos cross 0 (the frequent classes first) and the loss
    falls below anything a calibration of the fixed logits can reach."""
    z, y = _fixed_logits_problem()
    loss = LogitCompensatedBCE(VOC_COUNTS, VOC_N)
    start = loss(z, y).item()
    end = _fit_compensation(loss, z, y, lr, steps=300)
    assert end < start
    assert bool((loss.mu_pos > 0).all())
    assert bool((loss.mu_neg < 0).all())
    assert bool((loss.sigma_pos < 1).all())
    assert bool((loss.sigma_neg > 1).all())
    if lr == 1.0:
        flipped = torch.nonzero(loss.sigma_pos < 0).flatten().tolist()
        assert 14 in flipped  # "person", the most frequent class, inverts its positives' scores
        assert end < 0.5 * _best_affine_calibration()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("lr", [0.01, 0.1, 1.0, 10.0])
def test_tied_guard_keeps_scale_positive_and_bounded(lr):
    z, y = _fixed_logits_problem()
    loss = LogitCompensatedBCE(VOC_COUNTS, VOC_N, guard="tied", max_scale=2.0)
    start = loss(z, y).item()
    end = _fit_compensation(loss, z, y, lr, steps=300)
    sigma_pos, mu_pos, _, _ = loss.compensation()
    assert end <= start
    assert bool(((sigma_pos > 0.5) & (sigma_pos < 2.0)).all())
    # Tied: the loss is Eq. 2 (transcribed) with one (sigma, mu) for positives and negatives.
    zs, ys = z[:40].double(), y[:40]
    tied = ref_lcbce(zs, ys, VOC_COUNTS, VOC_N, sigma_pos, mu_pos, sigma_pos, mu_pos)
    with torch.no_grad():
        torch.testing.assert_close(
            loss(z[:40], ys).double(), ref_reduce(tied, ys, "mean"), rtol=1e-5, atol=0
        )
    # A positive per-class scale keeps every class's ranking; the loss stays above the floor.
    compensated = z.double() * sigma_pos.double() + mu_pos.double()  # no float32 rounding ties
    order = torch.argsort(compensated, dim=0, stable=True)
    assert torch.equal(order, torch.argsort(z, dim=0, stable=True))
    assert end >= _best_affine_calibration() - 1e-4


# --- the losses away from their defaults: hyper-parameters, reductions, dtypes, edge shapes ---


def test_focal_functional_checks_alpha():
    z, y = _batch()
    with pytest.raises(ValueError, match=r"`alpha` must be a finite real number in \[0, 1\]"):
        LF.focal_loss(z, y, alpha=1.5)


@pytest.mark.parametrize(("gamma", "beta"), [(0.5, 10.0), (1.0, 0.5), (1.5, 1.0)])
def test_db_any_gamma_and_beta_match_transcription(gamma, beta):
    z, y = _batch()
    kw = {**DB_KW, "gamma": gamma, "beta": beta}
    zz, zr = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    got = LF.distribution_balanced_loss(zz, y, COUNTS, N_TRAIN, **kw)
    expected = ref_reduce(ref_db(zr, y, COUNTS, N_TRAIN, lam=5.0, **kw), y, "mean")
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(
        *(torch.autograd.grad(v, a)[0] for v, a in ((got, zz), (expected, zr))),
        rtol=1e-6,
        atol=1e-9,
    )


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.5, 2.0])
def test_db_without_rebalancing_or_tolerance_is_the_focal_loss_to_the_bit(gamma):
    """alpha = 1/2, beta = 0 make every weight 1; kappa = 0 and lambda = 1 leave the logits as
    they are: DB is then the focal loss, value and gradient, bit for bit (a hard and a soft form
    of the same focal factor)."""
    z, y = _batch(dtype=torch.float32)
    neutral = {"alpha": 0.5, "beta": 0.0, "kappa": 0.0, "neg_scale": 1.0, "scale": 1.0}
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    db = LF.distribution_balanced_loss(
        za, y, COUNTS, N_TRAIN, gamma=gamma, reduction="none", **neutral
    )
    focal = LF.focal_loss(zb, y, gamma=gamma, reduction="none")
    assert torch.equal(db, focal)
    db.sum().backward()
    focal.sum().backward()
    assert torch.equal(za.grad, zb.grad)


def test_db_beta_zero_weighs_an_image_without_positive_as_any_other():
    """beta = 0 switches the re-balancing off: every weight is alpha + sigmoid(0) = alpha + 1/2,
    also where r is infinite (an image with no known positive), not NaN."""
    z = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -2.0, 0.3]], dtype=torch.float64)
    y = torch.tensor([[0, 0, -1, 0], [1, 0, 0, 1]])
    kw = {**DB_KW, "beta": 0.0, "gamma": 0.0}
    got = LF.distribution_balanced_loss(z, y, COUNTS, N_TRAIN, reduction="none", **kw)
    b = -(0.05 / 5) * torch.log(N_TRAIN / torch.tensor(COUNTS, dtype=torch.float64) - 1)
    w = (0.1 + 0.5) * 2.0  # (alpha + 1/2) * scale
    expected = torch.where(
        y == 1, w * F.softplus(-(z + b)), torch.where(y == 0, w / 5 * F.softplus(5 * (z + b)), 0.0)
    )
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "given", [{"sigma_pos": 1.3}, {"mu_pos": 0.4}, {"sigma_neg": 0.7}, {"mu_neg": -0.6}]
)
def test_lcbce_partial_compensation_matches_transcription(given):
    """One compensation parameter given as a number, the others at their identity defaults:
    positives and negatives then have different maps (float64 throughout)."""
    z, y = _batch()
    params = {"sigma_pos": 1.0, "mu_pos": 0.0, "sigma_neg": 1.0, "mu_neg": 0.0, **given}
    per_class = [
        [params[name]] * z.shape[1] for name in ("sigma_pos", "mu_pos", "sigma_neg", "mu_neg")
    ]
    expected = ref_lcbce(z, y, COUNTS, N_TRAIN, *per_class, omega32=True)
    for reduction in REDUCTIONS:
        got = LF.logit_compensated_bce(z, y, COUNTS, N_TRAIN, **given, reduction=reduction)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, ref_reduce(expected, y, reduction), rtol=1e-10, atol=0)


def test_consistency_functional_defaults_are_prob_and_mean():
    a, _ = _batch(seed=4)
    b, _ = _batch(seed=5)
    expected = ref_consistency(a, b, "prob").mean()
    torch.testing.assert_close(LF.cross_branch_consistency(a, b), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("space", ["prob", "logit"])
def test_consistency_of_a_single_element(space):
    a = torch.tensor([[1.5]], dtype=torch.float64)
    b = torch.tensor([[-0.5]], dtype=torch.float64)
    expected = ref_consistency(a, b, space)
    for reduction in REDUCTIONS:
        got = LF.cross_branch_consistency(a, b, space=space, reduction=reduction)
        torch.testing.assert_close(got, ref_reduce(expected, a, reduction), rtol=1e-12, atol=0)


@pytest.mark.parametrize("space", ["prob", "logit"])
def test_consistency_of_an_empty_batch(space):
    a = torch.zeros(0, 3, requires_grad=True)
    b = torch.zeros(0, 3, requires_grad=True)
    none = LF.cross_branch_consistency(a, b, space=space, reduction="none")
    assert none.shape == (0, 3)
    for reduction in ("mean", "sum"):
        got = LF.cross_branch_consistency(a, b, space=space, reduction=reduction)
        assert got.shape == ()
        assert got.item() == 0.0  # not NaN, as the mean of no element would be
        got.backward()
    assert a.grad.shape == (0, 3)
    assert b.grad.shape == (0, 3)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda z: LF.cross_branch_consistency(z, z, detach="both"),
            ValueError,
            "`detach` must be one of None, 'first', 'second'",
        ),
        (
            lambda z: LF.cross_branch_consistency(z.long(), z),
            TypeError,
            "`first` must be a floating-point",
        ),
        (
            lambda z: LF.cross_branch_consistency(z, z.long()),
            TypeError,
            "`second` must be a floating-point",
        ),
        (
            lambda z: LF.cross_branch_consistency(z * math.nan, z),
            ValueError,
            "`first` must be finite",
        ),
    ],
)
def test_consistency_functional_names_the_bad_argument(call, error, match):
    z, _ = _batch(dtype=torch.float32)
    with pytest.raises(error, match=match):
        call(z)


# --- bad inputs ----------------------------------------------------------------------------------

Z, Y = _batch(dtype=torch.float32, unknown=True)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: BCE()(Z, Y[:, :3]), ValueError, "`logits` and `targets` must have the same shape"),
        (lambda: BCE()(Z[0], Y[0]), ValueError, "`logits` must be 2-D"),
        (lambda: BCE()(Z.long(), Y), TypeError, "`logits` must be a floating-point"),
        (lambda: BCE()(Z.numpy(), Y), TypeError, "`logits` must be a torch.Tensor"),
        (lambda: BCE()(Z, [[1]]), TypeError, "`targets` must be a torch.Tensor or numpy"),
        (lambda: BCE()(Z, Y * 2), ValueError, r"`targets` must contain only values in"),
        (
            lambda: DistributionBalancedLoss(COUNTS, 60)(Z, Y.float() / 2),
            ValueError,
            r"\{0, 1, -1\}, got -0.5, 0.5 \(the Distribution-Balanced loss needs 0 / 1 labels",
        ),
        (lambda: BCE()(Z, Y.float() * math.nan), ValueError, r"`targets` must contain only values"),
        (lambda: BCE()(Z.clone().fill_(math.nan), Y), ValueError, "`logits` must be finite"),
        (lambda: BCE()(Z + math.inf, Y), ValueError, "`logits` must be finite, got 0 NaN and 24"),
        (lambda: BCE(reduction="avg"), ValueError, "`reduction` must be one of"),
        (lambda: LF.bce(Z, Y, reduction="batchmean"), ValueError, "`reduction` must be one of"),
        (lambda: LF.bce(Z, Y, torch.ones(3)), ValueError, r"`weight` must have 4 entries"),
        (
            lambda: LF.bce(Z, Y, torch.ones(3, 4)),
            ValueError,
            r"`weight` must have shape \(4,\) or \(2, 4\)",
        ),
        (lambda: WeightedBCE([1, 2, 3])(Z, Y), ValueError, "`logits` must have 3 columns"),
        (lambda: WeightedBCE([1, -2]), ValueError, "`class_counts` must be non-negative"),
        (
            lambda: WeightedBCE([1, 2], power=-1),
            ValueError,
            "`power` must be a finite real number >= 0",
        ),
        (
            lambda: FocalLoss(gamma=-1)(Z, Y),
            ValueError,
            "`gamma` must be a finite real number >= 0",
        ),
        (
            lambda: FocalLoss(alpha=1.5)(Z, Y),
            ValueError,
            r"`alpha` must be a finite real number in \[0, 1\]",
        ),
        (lambda: ClassBalancedFocalLoss([1, 2], beta=1.0), ValueError, r"`beta` .* in \[0, 1\)"),
        (
            lambda: ClassBalancedFocalLoss([[1, 2]]),
            TypeError,
            "`class_counts` must be a sequence of real numbers, got an element list",
        ),
        (lambda: LogitCompensatedBCE([5, 70], 60), ValueError, "`class_counts` cannot exceed"),
        (
            lambda: LogitCompensatedBCE([5, 7], 0),
            ValueError,
            "`num_images` must be an integer >= 1",
        ),
        (
            lambda: LogitCompensatedBCE([5, math.nan], 60),
            ValueError,
            "`class_counts` must be finite",
        ),
        (lambda: LogitCompensatedBCE([5, 7], 60, guard="clamp"), ValueError, "`guard` must be"),
        (
            lambda: LogitCompensatedBCE([5, 7], 60, guard="tied", max_scale=1.0),
            ValueError,
            "`max_scale`",
        ),
        (
            lambda: LogitCompensatedBCE(COUNTS, 60)(Z[:, :2], Y[:, :2]),
            ValueError,
            "must have 4 columns",
        ),
        (
            lambda: LF.logit_compensated_bce(Z, Y, COUNTS, 60, torch.ones(3)),
            ValueError,
            r"`sigma_pos` must have 4 entries \(one per class\)",
        ),
        (
            lambda: DistributionBalancedLoss(COUNTS, 1),
            ValueError,
            "`num_images` must be an integer >= 2",
        ),
        (
            lambda: DistributionBalancedLoss(COUNTS, 60, preset="lvis"),
            ValueError,
            "`preset` must be",
        ),
        (
            lambda: DistributionBalancedLoss(COUNTS, 60, neg_scale=0),
            ValueError,
            "`neg_scale` must be a finite real number > 0",
        ),
        (
            lambda: CrossBranchConsistency(space="kl"),
            ValueError,
            "`space` must be one of 'prob', 'logit'",
        ),
        (
            lambda: CrossBranchConsistency(detach="both"),
            ValueError,
            "`detach` must be one of None, 'first', 'second'",
        ),
        (lambda: CrossBranchConsistency()(Z, Z[:3]), ValueError, "`first` and `second` must have"),
        (lambda: CrossBranchConsistency()(Z, Z * math.nan), ValueError, "`second` must be finite"),
        (
            lambda: LTMLLoss(BCE(), weight=-0.1),
            ValueError,
            "`weight` must be a finite real number >= 0",
        ),
        (lambda: LTMLLoss(BCE())((Z, Z, Z), Y, Y), TypeError, "`out` must be .* of length 3"),
        (lambda: WeightedBCE.from_labels(np.array([1, 0])), ValueError, "`labels` must be 2-D"),
        (lambda: LTMLLoss("bce"), TypeError, "`cls_u` must be a callable, got str"),
        (lambda: LTMLLoss(BCE(), 3), TypeError, "`cls_r` must be a callable or None, got int"),
        (
            lambda: LTMLLoss(BCE(), consistency="mse"),
            TypeError,
            "`consistency` must be a callable or None, got str",
        ),
        (lambda: LTMLLoss(BCE())((Z,) * 4, Y.tolist(), Y), TypeError, "`y_u` must be a"),
        (lambda: LTMLLoss(BCE())((Z,) * 4, Y, Y.tolist()), TypeError, "`y_r` must be a"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- torch.compile ---------------------------------------------------------------------------


@pytest.mark.slow
def test_torch_compile_matches_eager():
    z, y = _batch(dtype=torch.float32)
    criterion = LTMLLoss(LogitCompensatedBCE(COUNTS, N_TRAIN, guard="tied"))
    out = (z, z * 0.5, z.flip(0), z * 2)
    expected = criterion(out, y, y)
    compiled = torch.compile(criterion, backend="inductor", fullgraph=True)
    got = compiled(out, y, y)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_public_exports():
    for name in ("LogitCompensatedBCE", "LTMLLoss", "DistributionBalancedLoss", "BCE"):
        assert getattr(ltml, name) is getattr(ltml.losses, name)


# --- input checks and class statistics at their edges --------------------------------------------
# Each bound refused just past it and accepted on it; the targets' fast checks on the host and
# their device-side twins (accelerators, torch.compile); class statistics' dtype and clamping.

DB_PAST_BOUND = [
    ({"alpha": -0.1}, ValueError, r"`alpha` must be a finite real number >= 0, got -0.1$"),
    ({"beta": -0.1}, ValueError, r"`beta` must be a finite real number >= 0, got -0.1$"),
    ({"mu": math.nan}, ValueError, r"`mu` must be a finite real number, got nan$"),
    ({"mu": "0.3"}, TypeError, r"`mu` must be a real number, got str '0.3'$"),
    ({"gamma": -0.5}, ValueError, r"`gamma` must be a finite real number >= 0, got -0.5$"),
    ({"scale": 0.0}, ValueError, r"`scale` must be a finite real number > 0, got 0.0$"),
    ({"kappa": -0.01}, ValueError, r"`kappa` must be a finite real number >= 0, got -0.01$"),
]


@pytest.mark.parametrize(("bad", "error", "match"), DB_PAST_BOUND)
def test_db_hyperparameters_past_their_bound_are_refused(bad, error, match):
    z, y = _batch(dtype=torch.float32)
    with pytest.raises(error, match=match):
        LF.distribution_balanced_loss(z, y, COUNTS, N_TRAIN, **bad)
    with pytest.raises(error, match=match):
        DistributionBalancedLoss(COUNTS, N_TRAIN, **bad)


@pytest.mark.parametrize(
    "edge",
    [{"alpha": 0.0}, {"beta": 0.0}, {"beta": 0.5}, {"gamma": 0.0}, {"kappa": 0.0}, {"scale": 0.5}],
)
def test_db_hyperparameters_on_their_bound_match_transcription(edge):
    z, y = _batch()
    kw = {**DB_KW, **edge}
    expected = ref_reduce(ref_db(z, y, COUNTS, N_TRAIN, lam=5.0, **kw), y, "mean")
    got = LF.distribution_balanced_loss(z, y, COUNTS, N_TRAIN, **kw)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
    module = DistributionBalancedLoss(COUNTS, N_TRAIN, **kw).to(torch.float64)
    torch.testing.assert_close(module(z, y), expected, rtol=1e-6, atol=1e-9)


def test_db_counts_are_checked_against_num_images_and_need_no_clamp_below_it():
    z, y = _batch()
    match = r"`class_counts` cannot exceed num_images=60, got 61$"
    with pytest.raises(ValueError, match=match):
        LF.distribution_balanced_loss(z, y, [61, 12, 3, 1], N_TRAIN)
    with pytest.raises(ValueError, match=match):
        DistributionBalancedLoss([61, 12, 3, 1], N_TRAIN)
    counts = [N_TRAIN - 1, 12, 3, 1]  # the largest count kept as it is
    expected = ref_reduce(ref_db(z, y, counts, N_TRAIN, lam=5.0, **DB_KW), y, "mean")
    got = LF.distribution_balanced_loss(z, y, counts, N_TRAIN)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


def test_db_logits_need_one_column_per_class_count():
    z, y = _batch(dtype=torch.float32)
    match = r"`logits` must have 4 columns \(num_classes\), got shape \(6, 3\)$"
    with pytest.raises(ValueError, match=match):
        LF.distribution_balanced_loss(z[:, :3], y[:, :3], COUNTS, N_TRAIN)
    with pytest.raises(ValueError, match=match):
        DistributionBalancedLoss(COUNTS, N_TRAIN)(z[:, :3], y[:, :3])


def test_db_statistics_are_float32_buffers_read_in_the_logits_dtype():
    module = DistributionBalancedLoss(COUNTS, N_TRAIN)
    assert {k: v.dtype for k, v in module.state_dict().items()} == {
        "inv_freq": torch.float32,
        "bias": torch.float32,
    }
    # A float64 copy of the module holds the same values: float32 logits, the same losses.
    z, y = _batch(dtype=torch.float32)
    module = DistributionBalancedLoss(COUNTS, N_TRAIN, reduction="none")
    got = DistributionBalancedLoss(COUNTS, N_TRAIN, reduction="none").to(torch.float64)(z, y)
    assert got.dtype == torch.float32
    assert torch.equal(got, module(z, y))


def _labels_with(value: int | float, *, dtype=torch.long) -> Tensor:
    """0 / 1 labels (both present, no -1) with one entry set to ``value``."""
    y = _batch(unknown=False)[1].to(dtype)
    y[0, 0], y[0, 1], y[2, 1] = 1, 0, value
    return y


@pytest.mark.parametrize(
    ("value", "shown"), [(2, "2"), (-2, "-2"), (1.5, "1.5"), (-0.5, "-0.5")], ids=str
)
def test_targets_outside_the_labels_are_refused_without_a_soft_hint(value, shown):
    """A value that is no soft target either gets the plain message, from every loss."""
    z, _ = _batch(dtype=torch.float32)
    y = _labels_with(value, dtype=torch.long if isinstance(value, int) else torch.float32)
    with pytest.raises(ValueError, match=rf"only values in \{{-1\}} ∪ \[0, 1\], got {shown}$"):
        LF.bce(z, y)
    with pytest.raises(ValueError, match=rf"only values in \{{0, 1, -1\}}, got {shown}$"):
        LF.distribution_balanced_loss(z, y, COUNTS, N_TRAIN)


def test_soft_targets_without_unknown_are_refused_by_hard_label_losses():
    z, _ = _batch(dtype=torch.float32)
    y = _labels_with(0.5, dtype=torch.float32)  # no -1: the smallest value is 0
    match = r"\{0, 1, -1\}, got 0.5 \(the Distribution-Balanced loss needs 0 / 1 labels"
    with pytest.raises(ValueError, match=match):
        LF.distribution_balanced_loss(z, y, COUNTS, N_TRAIN)
    LF.bce(z, y)  # a soft target for the losses that define them


def test_device_side_checks_accept_and_refuse_what_the_host_checks_do(monkeypatch):
    """The checks without a host sync (accelerators, torch.compile), run here on the CPU."""
    z, y = _batch(dtype=torch.float32)
    huge = torch.full((2, 4), 3e38)  # finite, though its sum overflows
    accepted = [
        (LF.bce, z, y.clamp(min=0).bool()),
        (LF.bce, z[:0], y[:0]),  # an empty batch
        (LF.bce, huge, torch.ones(2, 4)),
        (
            lambda a, b: LF.distribution_balanced_loss(a, b, COUNTS, N_TRAIN),
            z,
            y.clamp(min=0).bool(),
        ),
        (lambda a, b: LF.distribution_balanced_loss(a, b, COUNTS, N_TRAIN), z, y.float()),
        (lambda a, b: LF.distribution_balanced_loss(a, b, COUNTS, N_TRAIN), z, y.double()),
    ]
    on_host = [fn(a, b) for fn, a, b in accepted]
    monkeypatch.setattr(loss_core, "sync_free", lambda x: True)
    for (fn, a, b), expected in zip(accepted, on_host, strict=True):
        torch.testing.assert_close(fn(a, b), expected)
    for dtype in (torch.long, torch.float32):
        bad = _labels_with(-2, dtype=dtype)
        with pytest.raises(RuntimeError, match=r"\{-1\} ∪ \[0, 1\]"):
            LF.bce(z, bad)
        with pytest.raises(RuntimeError, match=r"\{0, 1, -1\}"):
            LF.distribution_balanced_loss(z, bad, COUNTS, N_TRAIN)


def test_mean_over_a_single_known_element_is_its_loss():
    z = torch.tensor([[0.7, -2.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([[1, -1, -1]])
    expected = math.log1p(math.exp(-0.7))  # -log(sigmoid(0.7))
    assert LF.bce(z, y).item() == pytest.approx(expected, rel=1e-12)
    assert LF.focal_loss(z, y, gamma=0.0).item() == pytest.approx(expected, rel=1e-12)


def test_compensation_as_a_number_a_0d_tensor_a_sequence_or_a_vector():
    z, y = _batch()
    values = (1.3, 0.2, 0.8, -0.3)
    expected = ref_reduce(ref_lcbce(z, y, COUNTS, N_TRAIN, *([v] * 4 for v in values)), y, "mean")
    forms = [
        float,
        torch.tensor,  # 0-d
        lambda v: [v] * 4,
        lambda v: np.full(4, v),
        lambda v: torch.full((4,), v),
    ]
    for form in forms:
        got = LF.logit_compensated_bce(z, y, COUNTS, N_TRAIN, *(form(v) for v in values))
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ({"sigma_pos": "1"}, TypeError, r"`sigma_pos` must be a real number, got str '1'$"),
        ({"mu_neg": math.inf}, ValueError, r"`mu_neg` must be a finite real number, got inf$"),
        (
            {"sigma_neg": torch.tensor(1 + 1j)},
            TypeError,
            r"`sigma_neg` must hold real numbers \(bool, int or float\), got dtype torch.complex64",
        ),
    ],
)
def test_compensation_refused_values(bad, error, match):
    z, y = _batch()
    with pytest.raises(error, match=match):
        LF.logit_compensated_bce(z, y, COUNTS, N_TRAIN, **bad)


def test_focal_alpha_keeps_float64_precision_with_any_weight():
    z, y = _batch()
    w = [0.5, 2.0, 1.0, 3.0]  # exact in float32
    for weight in (None, torch.tensor(w, dtype=torch.float64), torch.tensor(w)):
        expected = ref_focal(z, y, 2.0, 0.3, None if weight is None else w).sum()
        got = LF.focal_loss(z, y, gamma=2.0, alpha=0.3, weight=weight, reduction="sum")
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_weight_is_read_in_the_logits_dtype():
    """A float64 weight (numpy's default) gives float32 logits the loss of its float32 values."""
    z, y = _batch(dtype=torch.float32)
    w = torch.tensor([0.3, 1.7, 2.9, 0.1], dtype=torch.float64)
    for weight in (w, torch.stack([w, 1 / w])):
        got = LF.bce(z, y, weight, reduction="none")
        assert got.dtype == torch.float32
        assert torch.equal(got, LF.bce(z, y, weight.float(), reduction="none"))


def test_mfm_weight_power_is_checked_by_its_name():
    z, y = _batch(dtype=torch.float32)
    match = r"`weight_power` must be a finite real number >= 0, got -0.5$"
    with pytest.raises(ValueError, match=match):
        MultiFocalModifierLoss(COUNTS, weight_power=-0.5)
    with pytest.raises(ValueError, match=match):
        LF.multi_focal_modifier_loss(z, y, COUNTS, weight_power=-0.5)
    # q = 0, the bound: every class weighs 1
    assert torch.equal(MultiFocalModifierLoss(COUNTS, weight_power=0.0).weight, torch.ones(4))
