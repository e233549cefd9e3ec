"""The collaborative-training loss of Guo & Wang (CVPR 2021, Eq. 1) and its consistency term.

:func:`cross_branch_consistency` / :class:`CrossBranchConsistency`, the consistency between the
two branches' outputs for the same images, and :class:`LTMLLoss`, the sum of the two branches'
classification losses (:class:`ltml.losses.LogitCompensatedBCE` in the paper) and of their
consistency terms.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import (
    as_tensor,
    check_callable,
    check_choice,
    check_reduction,
    check_same_shape,
    check_scalar,
)
from ._core import Loss, Reduction, as_compute_logits, check_finite_values, reduce

__all__ = ["CrossBranchConsistency", "LTMLLoss", "LTMLLossOutput", "cross_branch_consistency"]


def _check_consistency_options(space: Any, detach: Any) -> None:
    """Check the consistency term's options."""
    check_choice(space, "space", ("prob", "logit"))
    check_choice(detach, "detach", (None, "first", "second"))


def cross_branch_consistency(
    first: Tensor,
    second: Tensor,
    *,
    space: Literal["prob", "logit"] = "prob",
    detach: Literal["first", "second"] | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Consistency between two branches' outputs for the same images (Guo & Wang, Eq. 1).

    .. math::
        \ell_{ik} = (\varsigma(a_{ik}) - \varsigma(b_{ik}))^2 \quad (\texttt{space="prob"}), \qquad
        \ell_{ik} = (a_{ik} - b_{ik})^2 \quad (\texttt{space="logit"}).

    The paper calls this term "logit consistency" without giving its form; the default, a mean
    squared error between sigmoid probabilities, is the one a published reproduction used. It is
    bounded and ignores disagreements between logits that are both saturated; ``"logit"`` keeps
    them but is unbounded. It takes no targets, so soft (mixed) targets leave it unchanged: with
    mixup, both branches see the same mixed images.

    Parameters
    ----------
    first, second : Tensor, shape (N, C)
        Logits of the two branches, e.g. ``u`` and ``u_hat``.
    space : {"prob", "logit"}
        Compare sigmoid probabilities (default) or raw logits.
    detach : {"first", "second"}, optional
        Stop the gradient through that argument, so that only the other branch is pulled
        towards it. None (default): both branches get gradients.
    reduction : {"mean", "sum", "none"}
        Mean or sum over all elements, or the ``(N, C)`` per-element loss.

    Returns
    -------
    Tensor
        Scalar, or ``(N, C)`` for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import cross_branch_consistency
    >>> a = torch.tensor([[0.0, 2.0]])
    >>> b = torch.tensor([[0.0, -2.0]])
    >>> round(cross_branch_consistency(a, b).item(), 4)
    0.29
    >>> cross_branch_consistency(a, b, space="logit").item()
    8.0
    """
    check_reduction(reduction)
    _check_consistency_options(space, detach)
    a = as_compute_logits(first, "first")
    b = as_compute_logits(second, "second")
    check_same_shape(a, b, "first", "second")
    check_finite_values({"first": first, "second": second})
    if detach == "first":
        a = a.detach()
    elif detach == "second":
        b = b.detach()
    if space == "prob":
        a, b = torch.sigmoid(a), torch.sigmoid(b)
    if a.numel() == 0:
        return reduce(a - b, None, reduction)
    return F.mse_loss(a, b, reduction=reduction)


class CrossBranchConsistency(Loss):
    r"""The cross-branch consistency term of Guo & Wang (CVPR 2021, Eq. 1).

    :func:`ltml.functional.cross_branch_consistency` as a module: the mean squared error between
    the sigmoid probabilities (``space="prob"``, default) or the logits (``"logit"``) of two
    branches for the same images. The paper does not give the term's form; the default is what a
    published reproduction used. Needs no labels.

    Parameters
    ----------
    space : {"prob", "logit"}
        Space in which the two outputs are compared.
    detach : {None, "first", "second"}
        Stop the gradient through one argument (None: both branches learn from the term).
    reduction : {"mean", "sum", "none"}
        Mean or sum over all elements, or the ``(N, C)`` loss.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import CrossBranchConsistency
    >>> u, u_hat = torch.tensor([[0.0, 2.0]]), torch.tensor([[0.0, -2.0]])
    >>> round(CrossBranchConsistency()(u, u_hat).item(), 4)
    0.29
    """

    _repr_fields = ("space", "detach")

    def __init__(
        self,
        space: Literal["prob", "logit"] = "prob",
        detach: Literal["first", "second"] | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_consistency_options(space, detach)
        self.space: Literal["prob", "logit"] = space
        self.detach: Literal["first", "second"] | None = detach

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        """Consistency of two ``(N, C)`` logit matrices for the same images."""
        return cross_branch_consistency(
            first, second, space=self.space, detach=self.detach, reduction=self.reduction
        )


class LTMLLossOutput(NamedTuple):
    """The terms of :class:`LTMLLoss`: backpropagate ``total``, log the rest.

    A term is ``None`` when the head output lacks its logits (an ablation that runs one branch
    only, or ``cross=False``); ``total`` is the sum of the terms present.
    """

    total: Tensor
    cls_u: Tensor | None
    cls_r: Tensor | None
    con_u: Tensor | None
    con_r: Tensor | None


class LTMLLoss(nn.Module):
    r"""The collaborative-training loss of Guo & Wang (CVPR 2021, Eq. 1).

    .. math::
        L = L_{cls}(u, y^u) + L_{cls}(r, y^r) + \lambda\,(L_{con}(u, \hat u) + L_{con}(r, \hat r)),

    where ``u`` / ``u_hat`` are the uniform batch's logits from branch U / R and ``r`` / ``r_hat``
    the re-balanced batch's from branch R / U (the output of :class:`ltml.DualBranchHead`).

    Parameters
    ----------
    cls_u : nn.Module
        Classification loss of the uniform branch, ``(logits, targets) -> Tensor``, e.g.
        :class:`~ltml.losses.LogitCompensatedBCE`.
    cls_r : nn.Module, optional
        That of the re-balanced branch. None (default) shares ``cls_u``, as the paper appears
        to: one set of compensation parameters then learns from both batches. Pass a second
        instance for separate ones.
    consistency : nn.Module, optional
        :math:`L_{con}`, ``(first, second) -> Tensor``; None (default) is
        :class:`CrossBranchConsistency` with its defaults.
    weight : float
        :math:`\lambda` (0.1, the value of a published reproduction). 0 turns the term off in
        ``total``; it is still computed and reported.

    Examples
    --------
    One training step (the head's output is any object with fields ``u, u_hat, r, r_hat``):

    >>> import torch
    >>> from ltml.losses import LogitCompensatedBCE, LTMLLoss
    >>> g = torch.Generator().manual_seed(0)
    >>> train_labels = (torch.rand(100, 3, generator=g) < torch.tensor([0.6, 0.2, 0.05])).long()
    >>> criterion = LTMLLoss(LogitCompensatedBCE.from_labels(train_labels))
    >>> head = torch.nn.Linear(8, 3)
    >>> opt = torch.optim.SGD([*head.parameters(), *criterion.parameters()], lr=0.01)
    >>> x_u, x_r = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    >>> y_u, y_r = train_labels[:4], train_labels[4:8]
    >>> out = (head(x_u), head(x_u), head(x_r), head(x_r))  # stand-in for (u, u_hat, r, r_hat)
    >>> terms = criterion(out, y_u, y_r)
    >>> terms.total.backward()
    >>> opt.step()
    >>> terms._fields
    ('total', 'cls_u', 'cls_r', 'con_u', 'con_r')
    """

    def __init__(
        self,
        cls_u: nn.Module,
        cls_r: nn.Module | None = None,
        consistency: nn.Module | None = None,
        weight: float = 0.1,
    ) -> None:
        super().__init__()
        check_callable(cls_u, "cls_u")
        check_callable(cls_r, "cls_r", optional=True)
        check_callable(consistency, "consistency", optional=True)
        check_scalar(weight, "weight", low=0.0)
        self.cls_u = cls_u
        self.cls_r = cls_u if cls_r is None else cls_r
        self.consistency = CrossBranchConsistency() if consistency is None else consistency
        self.weight = weight

    def forward(self, out: Any, y_u: Tensor | None, y_r: Tensor | None) -> LTMLLossOutput:
        """Loss of a two-branch output against the two batches' targets.

        Parameters
        ----------
        out : DualBranchOutput or sequence of 4 Tensors
            ``(u, u_hat, r, r_hat)``, each ``(N, C)``: read by field name when present,
            otherwise unpacked in that order. An entry may be ``None`` (a branch or a batch not
            run, as in the single-branch ablations): the terms that need it are skipped.
        y_u, y_r : Tensor, shape (N, C), or None
            Targets of the uniform and the re-balanced batch (-1 = unknown; soft targets in
            [0, 1] where the classification losses accept them, e.g. from
            :func:`ltml.mix_batch` on each batch); None only where the matching ``u`` / ``r``
            is None.

        Returns
        -------
        LTMLLossOutput
            ``(total, cls_u, cls_r, con_u, con_r)``.
        """
        if all(hasattr(out, f) for f in ("u", "u_hat", "r", "r_hat")):
            u, u_hat, r, r_hat = out.u, out.u_hat, out.r, out.r_hat
        elif isinstance(out, Sequence) and not isinstance(out, str) and len(out) == 4:
            u, u_hat, r, r_hat = out
        else:
            raise TypeError(
                "`out` must be a DualBranchOutput or a sequence of 4 logits (u, u_hat, r, r_hat), "
                f"got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, Sized) else "")
            )
        if u is None and r is None:
            raise ValueError("`out` must hold at least one of `u` and `r`, got neither")
        cls_u = None if u is None else self.cls_u(u, _targets(y_u, "y_u"))
        cls_r = None if r is None else self.cls_r(r, _targets(y_r, "y_r"))
        con_u = None if u is None or u_hat is None else self.consistency(u, u_hat)
        con_r = None if r is None or r_hat is None else self.consistency(r, r_hat)
        cls = [t for t in (cls_u, cls_r) if t is not None]
        con = [t for t in (con_u, con_r) if t is not None]
        total = sum(cls[1:], cls[0])
        if con:
            total = total + self.weight * sum(con[1:], con[0])
        return LTMLLossOutput(total, cls_u, cls_r, con_u, con_r)

    def extra_repr(self) -> str:
        """Show the consistency weight."""
        return f"weight={self.weight}"


def _targets(targets: Any, name: str) -> Tensor:
    """Targets of one batch: required where its logits are given; their form is checked here."""
    if targets is None:
        raise ValueError(f"`{name}` is required when the matching logits are given, got None")
    return as_tensor(targets, name)
