"""The binary cross-entropy and the focal loss, plain and class-weighted.

:func:`bce` (ERM) and :func:`focal_loss` (Lin et al., ICCV 2017) with their modules
:class:`BCE` and :class:`FocalLoss`, and the class-weighted baselines built on them:
:class:`WeightedBCE` (inverse class frequency) and :class:`ClassBalancedFocalLoss` (the
effective number of samples, Cui et al., CVPR 2019).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_probability, check_reduction, check_scalar, counts_tensor
from ..stats import class_weights
from ._core import (
    FromLabels,
    LabelLoss,
    Reduction,
    Unknown,
    check_classes,
    check_weight,
    element_weight,
    modulated,
    prepare,
    reduce,
    weight_buffer,
)

__all__ = ["BCE", "ClassBalancedFocalLoss", "FocalLoss", "WeightedBCE", "bce", "focal_loss"]


def bce(
    logits: Tensor,
    targets: Any,
    weight: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""Binary cross-entropy with logits that ignores unknown (-1) targets.

    The plain multi-label loss (ERM): per element

    .. math::
        \ell_{ik} = -w_k \, [\, y_{ik} \log \varsigma(z_{ik})
                    + (1 - y_{ik}) \log (1 - \varsigma(z_{ik})) \,],

    with :math:`\varsigma` the sigmoid: where every target is known, the same as
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    **Soft targets.** A target :math:`y_{ik} \in [0, 1]` enters the formula as written: the
    cross-entropy against a label that is 1 with probability :math:`y_{ik}`. It is linear in
    the target, so the loss of a mixup target :math:`\lambda y + (1 - \lambda) y'` is
    :math:`\lambda` times the loss of :math:`y` plus :math:`1 - \lambda` times that of
    :math:`y'`. With ``(2, C)`` weights a soft target's weight is interpolated,
    :math:`y_{ik} w^+_k + (1 - y_{ik}) w^-_k`.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores, any floating dtype (computed in at least float32).
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels or soft targets in [0, 1] (see "Soft targets" above); -1 marks an unknown
        label, which contributes nothing (and no gradient).
    weight : Tensor, shape (C,) or (2, C), optional
        Per-class weight :math:`w_k` (default 1), e.g. from :func:`ltml.class_weights`;
        shape ``(2, C)`` weighs the positives of each class by row 0 and its negatives by
        row 1.
    reduction : {"mean", "sum", "none"}
        ``"mean"``: mean over the known elements; ``"sum"``: their sum; ``"none"``: the
        ``(N, C)`` per-element loss, 0 where the target is unknown (and ignored).
    unknown : {"ignore", "negative"}
        Policy for unknown (-1) targets: left out of the loss (default) or counted as negatives
        (the "assume negative" baseline of partial-label learning).

    Returns
    -------
    Tensor
        Scalar, or ``(N, C)`` for ``reduction="none"``; float32 (float64 for float64 logits).

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import bce
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [-1, 1]])  # one unknown label
    >>> round(bce(logits, targets).item(), 4)
    0.1629
    """
    check_reduction(reduction)
    z, t, mask = prepare(logits, targets, None, unknown)
    weight = check_weight(weight, z.shape[1])
    # torch's fused kernel, forward and backward
    loss = F.binary_cross_entropy_with_logits(z, t, element_weight(weight, t), reduction="none")
    return reduce(loss, mask, reduction)


def _check_focal(gamma: Any, alpha: Any) -> None:
    """Check the focal loss's hyper-parameters."""
    check_scalar(gamma, "gamma", low=0.0)
    if alpha is not None:
        check_probability(alpha, "alpha")


def _with_alpha(weight: Tensor | None, alpha: float, t: Tensor) -> Tensor:
    """Fold the focal balance into ``(2, C)`` weights.

    ``alpha`` times the positives' weight, ``1 - alpha`` times the negatives'.
    """
    w = torch.ones((1,), dtype=t.dtype, device=t.device) if weight is None else weight.to(t)
    pos, neg = (w[0], w[1]) if w.ndim == 2 else (w.reshape(-1), w.reshape(-1))
    return torch.stack([alpha * pos, (1.0 - alpha) * neg])


def focal_loss(
    logits: Tensor,
    targets: Any,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""Sigmoid focal loss (Lin et al., ICCV 2017, Eq. 5) that ignores unknown (-1) targets.

    .. math::
        \ell_{ik} = -w_k \, \alpha_t \, (1 - p_t)^\gamma \log p_t, \qquad
        p_t = \varsigma(z_{ik}) \text{ if } y_{ik} = 1 \text{ else } 1 - \varsigma(z_{ik}),

    with :math:`\alpha_t = \alpha` for positives and :math:`1 - \alpha` for negatives (1 when
    ``alpha`` is None). Computed from log-sigmoids only, so it is finite for any finite logit.

    **Soft targets** :math:`y \in [0, 1]`: :math:`p_t = y\,\varsigma(z) + (1 - y)(1 -
    \varsigma(z))`, :math:`\alpha_t = y \alpha + (1 - y)(1 - \alpha)`, and :math:`-\log p_t` is
    read as the soft cross-entropy of :func:`bce`:

    .. math::
        \ell_{ik} = -w_k \, \alpha_t \, (1 - p_t)^\gamma \,
                    [\, y \log \varsigma(z) + (1 - y) \log (1 - \varsigma(z)) \,],

    the form of ``torchvision.ops.sigmoid_focal_loss``; for 0 / 1 targets the formula above.
    :math:`1 - p_t` stays above 0 for a soft target, so every ``gamma`` has a finite gradient.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels or soft targets in [0, 1]; -1 = unknown, ignored.
    gamma : float
        Focusing parameter :math:`\gamma \ge 0`; 0 gives the (alpha-weighted) BCE.
    alpha : float, optional
        Positive-class balance in [0, 1]; None (default) applies none.
    weight : Tensor, shape (C,) or (2, C), optional
        Per-class weight :math:`w_k`, as in :func:`bce`, e.g. from :func:`ltml.class_weights`.
    reduction : {"mean", "sum", "none"}
        As in :func:`bce`.
    unknown : {"ignore", "negative"}
        Policy for unknown (-1) targets: left out of the loss (default) or counted as negatives
        (the "assume negative" baseline of partial-label learning).

    Returns
    -------
    Tensor
        Scalar, or ``(N, C)`` for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import focal_loss
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [0, 1]])
    >>> round(focal_loss(logits, targets, gamma=2.0).item(), 4)
    0.1005
    """
    check_reduction(reduction)
    _check_focal(gamma, alpha)
    z, t, mask = prepare(logits, targets, None, unknown)
    weight = check_weight(weight, z.shape[1])
    if alpha is not None:
        weight = _with_alpha(weight, alpha, t)
    loss = F.binary_cross_entropy_with_logits(z, t, element_weight(weight, t), reduction="none")
    return reduce(modulated(loss, z, t, gamma, soft=True), mask, reduction)


class BCE(LabelLoss):
    r"""Binary cross-entropy with logits, ignoring unknown (-1) targets: the ERM baseline.

    :func:`ltml.functional.bce` as a module; the same as :class:`torch.nn.BCEWithLogitsLoss`
    where every target is known.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"``, or the ``(N, C)`` loss with 0 at unknown
        targets.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.
    weight : Tensor or sequence, shape (C,) or (2, C), optional
        Per-class weight, as ``weight`` of :func:`ltml.functional.bce` (default: none);
        finite and non-negative.

    Attributes
    ----------
    weight : Tensor or None
        The per-class weights, float32 (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import BCE
    >>> loss = BCE()(torch.tensor([[2.0, -1.0]]), torch.tensor([[1, -1]]))
    >>> round(loss.item(), 4)
    0.1269
    >>> weighted = BCE(weight=torch.tensor([2.0, 0.5]))
    >>> round(weighted(torch.tensor([[2.0, -1.0]]), torch.tensor([[1, -1]])).item(), 4)
    0.2539
    """

    _repr_fields = ("weight",)
    weight: Tensor | None

    def __init__(
        self,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
        *,
        weight: Any = None,
    ) -> None:
        super().__init__(reduction, unknown)
        self.register_buffer("weight", weight_buffer(weight))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        check_classes(logits, self.weight)
        return bce(logits, targets, self.weight, reduction=self.reduction, unknown=self.unknown)


class WeightedBCE(FromLabels, BCE):
    r"""BCE re-weighted by inverse class frequency.

    Every element of class :math:`k` (positive or negative) is weighted by

    .. math::
        w_k = \frac{n_k^{-q}}{\frac{1}{C} \sum_{k'} n_{k'}^{-q}},

    i.e. inverse frequency (``power`` :math:`q` = 1) or inverse square root (0.5), normalised to
    mean 1 over the classes so that the loss keeps the scale of the plain BCE:
    ``ltml.class_weights(class_counts, power=power)``. A count of 0 is read as 1 (the class has
    no positive to up-weight; its weight is finite).

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    power : float
        Exponent :math:`q \ge 0`.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The per-class weights (a buffer).

    Examples
    --------
    >>> from ltml.losses import WeightedBCE
    >>> WeightedBCE([300, 100]).weight
    tensor([0.5000, 1.5000])
    """

    weight: Tensor

    def __init__(
        self,
        class_counts: Any,
        *,
        power: float = 1.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        counts = counts_tensor(class_counts)
        super().__init__(reduction, unknown, weight=class_weights(counts, power=power))


class FocalLoss(LabelLoss):
    r"""Sigmoid focal loss (Lin et al., ICCV 2017), ignoring unknown (-1) targets.

    :func:`ltml.functional.focal_loss` as a module:
    :math:`-\alpha_t (1 - p_t)^\gamma \log p_t` per element.

    Parameters
    ----------
    gamma : float
        Focusing parameter (2 in the paper).
    alpha : float, optional
        Weight of positives (negatives get ``1 - alpha``); None (default) for none.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.
    weight : Tensor or sequence, shape (C,) or (2, C), optional
        Per-class weight, as ``weight`` of :func:`ltml.functional.focal_loss` (default: none);
        finite and non-negative.

    Attributes
    ----------
    weight : Tensor or None
        The per-class weights, float32 (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import FocalLoss
    >>> loss = FocalLoss()(torch.tensor([[2.0, -1.0]]), torch.tensor([[1, 0]]))
    >>> round(loss.item(), 4)
    0.0122
    """

    _repr_fields: ClassVar[tuple[str, ...]] = ("gamma", "alpha", "weight")
    weight: Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
        *,
        weight: Any = None,
    ) -> None:
        super().__init__(reduction, unknown)
        _check_focal(gamma, alpha)
        self.gamma = gamma
        self.alpha = alpha
        self.register_buffer("weight", weight_buffer(weight))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        check_classes(logits, self.weight)
        return focal_loss(
            logits,
            targets,
            gamma=self.gamma,
            alpha=self.alpha,
            weight=self.weight,
            reduction=self.reduction,
            unknown=self.unknown,
        )


class ClassBalancedFocalLoss(FromLabels, FocalLoss):
    r"""Focal loss weighted by the effective number of samples (Cui et al., CVPR 2019).

    Every element of class :math:`k` is weighted by the inverse effective number

    .. math::
        w_k \propto \frac{1 - \beta}{1 - \beta^{n_k}}, \qquad \sum_k w_k = C,

    (their Eq. 3 and the normalisation of their code), times the focal term of
    :class:`FocalLoss`: ``ltml.class_weights(class_counts, method="effective_number",
    beta=beta)``. A count of 0 is read as 1 (whose weight is finite, the largest).

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    beta : float
        :math:`\beta \in [0, 1)`; 0 gives equal weights, close to 1 inverse frequency.
    gamma : float
        Focal exponent.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The per-class weights (a buffer).

    Examples
    --------
    >>> from ltml.losses import ClassBalancedFocalLoss
    >>> ClassBalancedFocalLoss([300, 100], beta=0.99).weight
    tensor([0.8000, 1.2000])
    """

    _repr_fields = ("beta", "gamma")
    weight: Tensor

    def __init__(
        self,
        class_counts: Any,
        *,
        beta: float = 0.9999,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        beta = check_scalar(beta, "beta", low=0.0, high=1.0, high_open=True)
        counts = counts_tensor(class_counts)
        weight = class_weights(counts, method="effective_number", beta=beta)
        super().__init__(gamma, None, reduction, unknown, weight=weight)
        self.beta = beta
