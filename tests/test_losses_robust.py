"""Hill, SPLC (Zhang et al., 2021) and COMIC's head-tail balance loss against literal, slow
transcriptions of their formulas (element by element, in float64), values and gradients; the
unknown-label policy, soft targets, the epoch schedule and the released-code form of HTB.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ltml.functional as LF
from ltml import HeadTailBalancer, HillLoss, MultiFocalModifierLoss, SPLCLoss
from ltml.losses import BCE

TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def _sig(x: Tensor) -> Tensor:
    return 1 / (1 + torch.exp(-x))


def _batch(seed: int, n: int = 6, c: int = 5, scale: float = 3.0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).requires_grad_(True)
    y = (torch.rand(n, c, generator=g) < 0.4).long()
    y[torch.rand(n, c, generator=g) < 0.2] = -1
    return z, y


def _reduce(per: list[list[Tensor | None]], reduction: str) -> Tensor:
    """Literal reduction: None marks an element left out (unknown, ignored)."""
    kept = [v for row in per for v in row if v is not None]
    if reduction == "none":
        zero = torch.zeros((), dtype=torch.float64)
        return torch.stack([torch.stack([zero if v is None else v for v in row]) for row in per])
    total = sum(kept, torch.zeros((), dtype=torch.float64))
    return total if reduction == "sum" else total / max(len(kept), 1)


# ------------------------------------------------------------------------------------ literal forms


def _hill_literal(z: Tensor, y: Tensor, lamb: float, m: float, g: float, unknown: str, red: str):
    """Paper / code: y [-(1 - p_m)^g log p_m] + (1 - y)(lamb - p) p^2, per element."""
    per: list[list[Tensor | None]] = []
    for i in range(z.shape[0]):
        row: list[Tensor | None] = []
        for k in range(z.shape[1]):
            t = float(y[i, k])
            if t == -1 and unknown == "ignore":
                row.append(None)
                continue
            t = max(t, 0.0)
            p, p_m = _sig(z[i, k]), _sig(z[i, k] - m)
            pos = -((1 - p_m) ** g) * torch.log(p_m)
            neg = (lamb - p) * p * p
            # the code's soft reading: ((1 - p_m) t + 1 - t)^g [t (-log p_m) + (1 - t) neg]
            focus = ((1 - p_m) * t + 1 - t) ** g
            row.append(focus * (t * -torch.log(p_m) + (1 - t) * neg) if 0 < t < 1 else
                       (pos if t == 1 else neg))  # fmt: skip
        per.append(row)
    return _reduce(per, red)


def _splc_literal(z: Tensor, y: Tensor, tau: float, m: float, g: float, correct: bool,
                  unknown: str, red: str):  # fmt: skip
    """Paper Eq.: positives (1 - p_m)^g [-log p_m]; a negative with p > tau as a positive at p."""
    per: list[list[Tensor | None]] = []
    for i in range(z.shape[0]):
        row: list[Tensor | None] = []
        for k in range(z.shape[1]):
            t = int(y[i, k])
            if t == -1 and unknown == "ignore":
                row.append(None)
                continue
            if t == 1:
                p = _sig(z[i, k] - m)
                row.append(-((1 - p) ** g) * torch.log(p))
                continue
            p = _sig(z[i, k])
            if (
                correct and float(p.detach()) > tau
            ):  # corrected: the positives' loss, without margin
                row.append(-((1 - p) ** g) * torch.log(p))
            else:
                row.append(-(p**g) * torch.log(1 - p))
        per.append(row)
    return _reduce(per, red)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("unknown", ["ignore", "negative"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("lamb", "margin", "gamma"),
    [(1.5, 1.0, 2.0), (2.0, 0.5, 0.5), (1.0, 0, 0), (1.5, 0.5, 1.0)],
)
def test_hill_matches_its_transcription(
    seed: int, unknown: str, reduction: str, lamb: float, margin: float, gamma: float
) -> None:
    z, y = _batch(seed)
    kw = {"lamb": lamb, "margin": margin, "gamma": gamma, "reduction": reduction}
    expected = _hill_literal(z, y, lamb, margin, gamma, unknown, reduction)
    for got in (
        LF.hill_loss(z, y, unknown=unknown, **kw),
        HillLoss(lamb, margin, gamma, reduction=reduction, unknown=unknown)(z, y),
    ):
        torch.testing.assert_close(got, expected, **TIGHT)
        (grad,) = torch.autograd.grad(got.sum(), z)
        (grad_expected,) = torch.autograd.grad(expected.sum(), z, retain_graph=True)
        torch.testing.assert_close(grad, grad_expected, **TIGHT)


def test_hill_soft_targets_follow_the_code_reading() -> None:
    z, _ = _batch(7)
    t = torch.rand(z.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t[0, :3] = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    got = LF.hill_loss(z, t, reduction="none")
    torch.testing.assert_close(got, _hill_literal(z, t, 1.5, 1.0, 2.0, "ignore", "none"), **TIGHT)
    # 0 / 1 given as floats: the hard formula's values, to the bit
    hard = (t > 0.5).to(torch.float64)
    assert torch.equal(
        LF.hill_loss(z, hard, reduction="none"), LF.hill_loss(z, hard.long(), reduction="none")
    )


def test_hill_spares_confident_negatives() -> None:
    # The negatives' gradient rises, then falls towards p = 1 (BCE's keeps rising).
    z = torch.tensor([[-2.0, 0.0, 2.0, 6.0]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(LF.hill_loss(z, torch.zeros(1, 4), reduction="sum"), z)
    assert grad[0, 1] > grad[0, 0]
    assert grad[0, 3] < grad[0, 2]
    assert grad[0, 3] < 0.01


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("unknown", ["ignore", "negative"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("tau", "margin", "gamma"),
    [(0.6, 1.0, 2.0), (0.3, 0.5, 0.5), (0.8, 0, 0), (0.6, 0.5, 1.0)],
)
def test_splc_matches_its_transcription(
    seed: int, unknown: str, reduction: str, tau: float, margin: float, gamma: float
) -> None:
    z, y = _batch(seed)
    for correct in (False, True):
        kw = {"tau": tau, "margin": margin, "gamma": gamma, "reduction": reduction}
        expected = _splc_literal(z, y, tau, margin, gamma, correct, unknown, reduction)
        module = SPLCLoss(tau, margin, gamma, start_epoch=2, reduction=reduction, unknown=unknown)
        module.set_epoch(2 if correct else 1)
        for got in (LF.splc_loss(z, y, correct=correct, unknown=unknown, **kw), module(z, y)):
            torch.testing.assert_close(got, expected, **TIGHT)
            (grad,) = torch.autograd.grad(got.sum(), z)
            (grad_expected,) = torch.autograd.grad(expected.sum(), z, retain_graph=True)
            torch.testing.assert_close(grad, grad_expected, **TIGHT)


def test_splc_loss_corrects_by_default() -> None:
    z, y = _batch(0)
    torch.testing.assert_close(LF.splc_loss(z, y), LF.splc_loss(z, y, correct=True), **TIGHT)
    assert not torch.equal(LF.splc_loss(z, y), LF.splc_loss(z, y, correct=False))


def test_head_tail_balance_names_the_logits_of_another_batch_size() -> None:
    crit = torch.nn.BCEWithLogitsLoss(reduction="none")
    z, y = torch.zeros(3, 4), torch.ones(3, 4)
    with pytest.raises(ValueError, match=r"`head_logits`.*`balanced_logits`"):
        LF.head_tail_balance_loss(z[:2], z, z, y, crit)


def test_splc_corrects_from_its_start_epoch_and_only_negatives() -> None:
    z = torch.tensor([[3.0, 3.0, 3.0, -3.0]], dtype=torch.float64)
    y = torch.tensor([[1, 0, -1, 0]])
    loss = SPLCLoss(unknown="negative", reduction="none")  # start_epoch 1, the authors'
    before = loss(z, y)
    loss.set_epoch(1)
    after = loss(z, y)
    assert torch.equal(before[0, [0, 3]], after[0, [0, 3]])  # positive, confident negative: same
    assert (after[0, 1:3] < before[0, 1:3] / 100).all()  # p = 0.95 > 0.6: trained as positives
    ignored = SPLCLoss(start_epoch=0, reduction="none")(z, y)
    assert ignored[0, 2] == 0  # unknown and ignored: out of the loss, corrected or not


def test_splc_refuses_soft_targets() -> None:
    with pytest.raises(ValueError, match="SPLC needs 0 / 1 labels"):
        LF.splc_loss(torch.zeros(2, 2), torch.full((2, 2), 0.5))


# -------------------------------------------------------------------------------- head-tail balance


Criterion = Callable[[Tensor, Tensor], Tensor]


def _htb_literal(
    head: Tensor, tail: Tensor, bal: Tensor, y: Tensor, crit: Criterion, gamma: float, code: bool
) -> Tensor:
    """wannature/COMIC HeadTailBalancerLoss, rewritten (ours: sigmoid products as logits)."""
    n, c = bal.shape
    a = crit(head if code else head.detach(), y).sum() ** gamma
    b = crit(tail if code else tail.detach(), y).sum() ** gamma
    w_h, w_t = a / (a + b), b / (a + b)
    terms = []
    for expert in (head.detach(), tail.detach()):
        rows = []
        for i in range(n):
            if code:  # softmax over the classes, the product passed as logits
                e = [math.e ** float(v) for v in expert[i]]
                se = [v / sum(e) for v in e]
                eb = [torch.exp(bal[i, k]) for k in range(c)]
                sb = [v / sum(eb) for v in eb]
                rows.append(torch.stack([se[k] * sb[k] for k in range(c)]))
            else:
                q = [_sig(expert[i, k]) * _sig(bal[i, k]) for k in range(c)]
                rows.append(torch.stack([torch.log(v / (1 - v)) for v in q]))
        terms.append(crit(torch.stack(rows), y))
    return w_h * terms[0] + w_t * terms[1]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("code", [False, True])
@pytest.mark.parametrize("gamma", [2.0, 0.5, 0.0])
@pytest.mark.parametrize(
    "make", [lambda: MultiFocalModifierLoss([30, 10, 5, 2, 1]), lambda: BCE(reduction="sum")]
)
def test_head_tail_balance_matches_its_transcription(
    seed: int, code: bool, gamma: float, make: Callable[[], torch.nn.Module]
) -> None:
    _, y = _batch(seed)
    head, tail, bal = (_batch(seed * 10 + k, scale=1.5)[0] for k in range(3))
    crit = make().double()
    expected = _htb_literal(head, tail, bal, y, crit, gamma, code)
    module = HeadTailBalancer(crit, gamma, released_code=code)
    for got in (
        LF.head_tail_balance_loss(head, tail, bal, y, crit, gamma=gamma, released_code=code),
        module(head, tail, bal, y),
    ):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
        grads = torch.autograd.grad(got, (head, tail, bal), allow_unused=True)
        expected_grads = torch.autograd.grad(
            expected, (head, tail, bal), allow_unused=True, retain_graph=True
        )
        for g, e in zip(grads, expected_grads, strict=True):
            if e is None:
                assert g is None or not g.any()
            else:
                torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    if not code:  # only the balanced classifier learns
        head_grad, tail_grad, _ = torch.autograd.grad(
            module(head, tail, bal, y), (head, tail, bal), allow_unused=True
        )
        assert head_grad is None
        assert tail_grad is None


def test_balance_weights_favour_the_expert_that_learns_worse() -> None:
    y = torch.tensor([[1, 0, 0], [0, 1, 0]])
    good, bad = torch.tensor([[4.0, -4, -4], [-4, 4, -4]]), torch.tensor([[-4.0, 4, 4], [4, -4, 4]])
    bal = torch.zeros(2, 3)
    crit = BCE()
    through_bad = crit(torch.log(torch.sigmoid(bad) * 0.5 / (1 - torch.sigmoid(bad) * 0.5)), y)
    loss = LF.head_tail_balance_loss(good, bad, bal, y, crit, gamma=4.0)
    torch.testing.assert_close(loss, through_bad, rtol=2e-3, atol=0)  # w_T near 1


def test_balance_saturated_products_stay_finite() -> None:
    big = torch.full((2, 3), 60.0)
    bal = torch.full((2, 3), 60.0, requires_grad=True)
    loss = LF.head_tail_balance_loss(big, big, bal, torch.ones(2, 3), BCE())
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(bal.grad).all()
