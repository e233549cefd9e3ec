"""COMIC's Multi-Focal Modifier loss (Zhang et al., ICCV 2023), single-branch form.

An asymmetric loss (:mod:`ltml.losses.asymmetric`) with COMIC's class weights, a class-dependent
focusing of the negatives and a co-occurrence modifier of the positives:
:func:`multi_focal_modifier_loss` and :class:`MultiFocalModifierLoss`. COMIC's label correction,
whose loss this is too, is in :mod:`ltml.losses.correction`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import Self

from .._label_forms import read_labels
from .._validation import (
    check_finite,
    check_non_negative,
    check_reduction,
    check_scalar,
    check_shape,
    check_tensor,
)
from ..stats import class_counts, cooccurrence
from ._core import (
    LabelLoss,
    Reduction,
    Unknown,
    asymmetric_terms,
    check_asymmetric,
    comic_class_weights,
    prepare,
    reduce,
    shifted_negative,
)

__all__ = ["MultiFocalModifierLoss", "multi_focal_modifier_loss"]


def _check_cooccurrence(cooccurrence: Any, num_classes: int) -> None:
    """Check co-occurrence counts: None, or a finite non-negative ``(C, C)`` tensor."""
    if cooccurrence is not None:
        check_tensor(cooccurrence, "cooccurrence")
        check_shape(cooccurrence, "cooccurrence", (num_classes, num_classes))
        check_finite(cooccurrence, "cooccurrence")
        check_non_negative(cooccurrence, "cooccurrence")


def _cooccurrence_attention(targets: Tensor, cooccurrence: Tensor) -> Tensor:
    r"""COMIC's per-image attention :math:`a_i` from the column-normalised co-occurrence matrix.

    :math:`a_i` is the mean of the rows of :math:`A_{jk} / \sum_{j'} A_{j'k}` over image
    :math:`i`'s known positives :math:`j`, renormalised to sum 1. An image without any known
    positive gets :math:`a_i = 0` (the authors' code gives NaN), and a class that co-occurs with
    nothing a column of 0. Computed without gradient, in at least float32, outside autocast.
    """
    with torch.no_grad(), torch.autocast(targets.device.type, enabled=False):
        dtype = torch.promote_types(targets.dtype, torch.float32)
        a = cooccurrence.to(targets.device, dtype)
        a = a / a.sum(dim=0, keepdim=True).clamp(min=torch.finfo(dtype).tiny)
        scores = (targets > 0).to(dtype) @ a  # sum of rows; the mean's 1/count cancels below
        total = scores.sum(dim=1, keepdim=True)
        return torch.where(total > 0, scores / total.clamp(min=torch.finfo(dtype).tiny), 0.0)


def multi_focal_modifier_loss(
    logits: Tensor,
    targets: Any,
    class_counts: Any,
    cooccurrence: Tensor | None = None,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 3.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    weight_power: float = 1 / 3,
    neg_boost: float = 1.0,
    detach_focal_weight: bool = False,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""COMIC's Multi-Focal Modifier loss (Zhang et al., ICCV 2023), single-branch form.

    An asymmetric loss (:func:`~ltml.functional.asymmetric_loss`) with a class weight, a
    class-dependent focusing of the negatives and a co-occurrence modifier of the positives. With
    :math:`p = \varsigma(z)`, :math:`w_c = (1 - \log(n_c / n_{max}))^{q}` and the image's
    co-occurrence attention :math:`a_{ic}`: the mean, over the image's known positives
    :math:`j`, of the rows :math:`A_{jc} / \sum_{j'} A_{j'c}` of the column-normalised
    co-occurrence counts, renormalised to sum 1 over :math:`c` (0 without ``cooccurrence``):

    .. math::
        p^+ = p\,(1 - a_{ic}), \qquad
        p^- = \min(1 - \max(p - m, 0),\; 1) \cdot b_{ic}, \text{ clamped at } 1,

    .. math::
        \ell_{ic} = -w_c \,[\, y (1 - p^+)^{\gamma_+} \log p^+
                    + (1 - y)(1 - p^-)^{\gamma_- + w_c} \log p^- \,],

    where :math:`b_{ic}` = ``neg_boost`` where :math:`a_{ic} \ne 0` and 1 elsewhere; logarithms
    clamped at ``eps``. Rare classes get a larger weight and a stronger down-weighting of their
    easy negatives.

    **What follows the paper and what the released code.** The released code sums over
    elements (``reduction="sum"``), uses :math:`q = 1/3` (default here), :math:`\gamma_+ = 0`,
    :math:`\gamma_- = 3`, :math:`m = 0.05`, a factor 1.2 on the negatives that co-occur with a
    positive of the image (``neg_boost=1.2``; the paper has no such factor, default 1) and a
    focusing weight without gradient (``detach_focal_weight=True``; default here: with
    gradient). The paper's focusing exponent of the positives also carries a head-tail term that
    the code leaves out; it is left out here too (pass a larger ``gamma_pos`` to focus the
    positives). The code's attention is NaN for an image with no positive (it then poisons the
    whole batch's loss); here such an image gets no modification.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`z`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels (no soft targets: the attention needs to know the positives); -1 = unknown
        (see ``unknown``). Only known positives enter the attention.
    class_counts : sequence or Tensor, shape (C,)
        Training positives per class :math:`n_c` (0 is read as 1).
    cooccurrence : Tensor, shape (C, C), optional
        Co-occurrence counts of the training set, :func:`ltml.data.cooccurrence` (None: no
        co-occurrence modifier).
    gamma_pos, gamma_neg : float
        :math:`\gamma_+` and the base :math:`\gamma_-` of the negatives' exponent.
    clip : float
        Margin :math:`m` of the negatives' probability.
    eps : float
        Lower clamp of the logarithms' arguments, in [1.2e-38, 1) (float32's smallest
        normal number: the loss computes in at least float32).
    weight_power : float
        :math:`q` of the class weight (0: every class weighs 1).
    neg_boost : float
        :math:`b`, the released code's factor on the co-occurring negatives (1: none).
    detach_focal_weight : bool
        Compute the focusing weight without gradient (the released code).
    reduction : {"mean", "sum", "none"}
        As in :func:`~ltml.functional.asymmetric_loss`.
    unknown : {"ignore", "negative"}
        Policy for unknown (-1) targets: left out of the loss (default) or counted as negatives.

    Returns
    -------
    Tensor
        Scalar, or ``(N, C)`` for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from ltml.data import cooccurrence
    >>> from ltml.functional import multi_focal_modifier_loss
    >>> train = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0]])
    >>> logits = torch.tensor([[2.0, -1.0, 0.5], [0.5, 3.0, -2.0]])
    >>> targets = torch.tensor([[1, 0, -1], [0, 1, 0]])
    >>> counts, a = train.sum(0), cooccurrence(train)
    >>> round(multi_focal_modifier_loss(logits, targets, counts, a).item(), 4)
    0.4916
    """
    check_reduction(reduction)
    check_asymmetric(gamma_pos, gamma_neg, clip, eps, detach_focal_weight)
    check_scalar(neg_boost, "neg_boost", low=1.0)
    w = comic_class_weights(class_counts, weight_power)
    _check_cooccurrence(cooccurrence, w.numel())
    return _multi_focal(
        logits,
        targets,
        w,
        cooccurrence,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        clip=clip,
        eps=eps,
        neg_boost=neg_boost,
        detach_focal_weight=detach_focal_weight,
        reduction=reduction,
        unknown=unknown,
    )


def _multi_focal(
    logits: Tensor,
    targets: Any,
    weight: Tensor,
    cooccurrence: Tensor | None,
    *,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
    eps: float,
    neg_boost: float,
    detach_focal_weight: bool,
    reduction: str,
    unknown: str,
) -> Tensor:
    """Compute the MFM loss for validated class weights and co-occurrence counts.

    The loss of both forms: the module holds the weights of counts checked once, where the
    functional's check of the counts, a host read, would stall an accelerator at every step.
    """
    z, t, mask = prepare(
        logits, targets, weight.numel(), unknown, soft=False, loss="the Multi-Focal Modifier loss"
    )
    w = weight.to(z)
    p = torch.sigmoid(z)
    p_pos, p_neg = p, shifted_negative(p, clip)
    if cooccurrence is not None:
        a = _cooccurrence_attention(t, cooccurrence)
        p_pos = p * (1.0 - a)
        if neg_boost != 1.0:
            p_neg = torch.where(a != 0, p_neg * neg_boost, p_neg).clamp(max=1.0)
    loss = w * asymmetric_terms(p_pos, p_neg, t, gamma_pos, gamma_neg + w, eps, detach_focal_weight)
    return reduce(loss, mask, reduction)


class MultiFocalModifierLoss(LabelLoss):
    r"""COMIC's Multi-Focal Modifier loss (Zhang et al., ICCV 2023), single-branch form.

    :func:`ltml.functional.multi_focal_modifier_loss` as a module, with the class weights
    :math:`w_c = (1 - \log(n_c / n_{max}))^{q}` and the training co-occurrence counts held as
    buffers. Build it with :meth:`from_labels` (class counts and co-occurrence of the training
    label matrix, known positives only). The formula, and every difference between the paper,
    the released code and this implementation, are listed in the functional's documentation.
    Targets must be 0 / 1 (-1 = unknown): the co-occurrence attention is defined by the image's
    positive labels, so soft targets raise a ``ValueError``.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training positives per class.
    cooccurrence : Tensor, shape (C, C), optional
        Training co-occurrence counts (:func:`ltml.data.cooccurrence`); None: no modifier.
    gamma_pos, gamma_neg, clip, eps, weight_power, neg_boost : float
        As in :func:`ltml.functional.multi_focal_modifier_loss`.
    detach_focal_weight : bool
        Focusing weight without gradient (the released code).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"`` (the released code), or ``"none"``.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The class weights :math:`w_c` (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import MultiFocalModifierLoss
    >>> train = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0]])
    >>> criterion = MultiFocalModifierLoss.from_labels(train)
    >>> criterion.weight
    tensor([1.0000, 1.1201, 1.2803])
    >>> logits = torch.tensor([[2.0, -1.0, 0.5], [0.5, 3.0, -2.0]])
    >>> round(criterion(logits, torch.tensor([[1, 0, -1], [0, 1, 0]])).item(), 4)
    0.4916
    """

    _repr_fields = ("gamma_pos", "gamma_neg", "clip", "weight_power", "neg_boost")
    weight: Tensor
    cooccurrence: Tensor | None

    def __init__(
        self,
        class_counts: Any,
        cooccurrence: Tensor | None = None,
        *,
        gamma_pos: float = 0.0,
        gamma_neg: float = 3.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        weight_power: float = 1 / 3,
        neg_boost: float = 1.0,
        detach_focal_weight: bool = False,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_asymmetric(gamma_pos, gamma_neg, clip, eps, detach_focal_weight)
        check_scalar(neg_boost, "neg_boost", low=1.0)
        weight = comic_class_weights(class_counts, weight_power)
        _check_cooccurrence(cooccurrence, weight.numel())
        self.register_buffer("weight", weight.to(torch.float32))
        self.register_buffer(
            "cooccurrence", None if cooccurrence is None else cooccurrence.to(torch.float32)
        )
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.weight_power, self.neg_boost = weight_power, neg_boost
        self.detach_focal_weight = detach_focal_weight

    @classmethod
    def from_labels(cls, labels: Any, **kwargs: Any) -> Self:
        """Build the loss from the training label matrix (0 / 1, -1 = unknown).

        Parameters
        ----------
        labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
            Training labels, in any form :func:`ltml.data.class_counts` takes; class counts and
            co-occurrence count known positives only.
        **kwargs
            The other arguments of the constructor.

        Returns
        -------
        The loss.
        """
        y = read_labels(labels, "labels")
        return cls(class_counts(y), cooccurrence(y), **kwargs)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return _multi_focal(
            logits,
            targets,
            self.weight,
            self.cooccurrence,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            clip=self.clip,
            eps=self.eps,
            neg_boost=self.neg_boost,
            detach_focal_weight=self.detach_focal_weight,
            reduction=self.reduction,
            unknown=self.unknown,
        )
