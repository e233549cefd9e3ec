"""The asymmetric loss, ASL (Ridnik et al., ICCV 2021).

:func:`asymmetric_loss` and :class:`AsymmetricLoss`: separate focusing of the positives and the
negatives, and a probability margin that discards the easiest negatives. COMIC's losses
(:mod:`ltml.losses.comic`) build on its terms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_reduction
from ._core import (
    LabelLoss,
    Reduction,
    Unknown,
    asymmetric_terms,
    check_asymmetric,
    check_classes,
    check_weight,
    element_weight,
    prepare,
    reduce,
    shifted_negative,
    weight_buffer,
)

__all__ = ["AsymmetricLoss", "asymmetric_loss"]


def asymmetric_loss(
    logits: Tensor,
    targets: Any,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    detach_focal_weight: bool = False,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""Asymmetric loss, ASL (Ridnik et al., ICCV 2021).

    With :math:`p = \varsigma(z)` and the shifted probability of a negative
    :math:`p_m = \max(p - m, 0)` (the margin :math:`m` = ``clip`` discards the easiest
    negatives, :math:`p < m`, entirely):

    .. math::
        \ell_{ik} = -w_k \,[\, y (1 - p)^{\gamma_+} \log p
                    + (1 - y)\, p_m^{\gamma_-} \log (1 - p_m) \,],

    each logarithm's argument clamped at ``eps`` (as the authors' code does: an element's loss
    is at most :math:`-\log \epsilon \approx 18.4`). The focusing weights
    :math:`(1-p)^{\gamma_+}` and :math:`p_m^{\gamma_-}` pass their gradient by default, as in
    the paper's formula; ``detach_focal_weight=True`` treats them as constants, which is what
    the authors' code does by default (``disable_torch_grad_focal_loss=True``; they call it an
    option outside the paper).

    **Scale.** The authors' code **sums** over the batch and the classes. ``reduction="sum"``
    gives that value; the default ``"mean"`` divides it by the number of known elements
    (:math:`N \cdot C` with every label known), as every ltml loss does. Keep the learning
    rate of a recipe that used the sum by multiplying the loss by :math:`N \cdot C` or by
    using ``"sum"``.

    **Defaults** are the paper's recommended values (:math:`\gamma_+ = 0`,
    :math:`\gamma_- = 4`, :math:`m = 0.05`), which are also the values of the authors' training
    script. The class of their code defaults to :math:`\gamma_+ = 1` and detaches the focusing
    weight.

    **Soft targets** :math:`y \in [0, 1]` are read as the authors' code reads them:
    :math:`p_t = y p + (1 - y)(1 - p_m)` and :math:`\gamma_t = y \gamma_+ + (1 - y) \gamma_-`,

    .. math::
        \ell_{ik} = -w_k \,(1 - p_t)^{\gamma_t}\,[\, y \log p + (1 - y) \log (1 - p_m) \,],

    which for 0 / 1 targets is the formula above. With ``(2, C)`` weights a soft target's weight
    is interpolated, as in :func:`~ltml.functional.bce`.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`z`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels or soft targets in [0, 1]; -1 = unknown (see ``unknown``).
    gamma_pos, gamma_neg : float
        Focusing exponents :math:`\gamma_+, \gamma_- \ge 0` of positives and negatives.
    clip : float
        Probability margin :math:`m \in [0, 1)` of the negatives (0: none).
    eps : float
        Lower clamp of the logarithms' arguments, in [1.2e-38, 1) (float32's smallest
        normal number: the loss computes in at least float32).
    detach_focal_weight : bool
        Compute the focusing weight without gradient (the authors' code default).
    weight : Tensor, shape (C,) or (2, C), optional
        Per-class weight :math:`w_k` (default 1), as in :func:`ltml.functional.bce`.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements; ``"sum"`` (the authors' code); ``"none"``.
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
    >>> from ltml.functional import asymmetric_loss
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [0, 1]])
    >>> round(asymmetric_loss(logits, targets).item(), 4)
    0.0668
    >>> round(asymmetric_loss(logits, targets, reduction="sum").item(), 4)  # authors' scale
    0.2673
    """
    check_reduction(reduction)
    check_asymmetric(gamma_pos, gamma_neg, clip, eps, detach_focal_weight)
    z, t, mask = prepare(logits, targets, None, unknown)
    weight = element_weight(check_weight(weight, z.shape[1]), t)
    p = torch.sigmoid(z)
    loss = asymmetric_terms(
        p, shifted_negative(p, clip), t, gamma_pos, gamma_neg, eps, detach_focal_weight
    )
    if weight is not None:
        loss = loss * weight
    return reduce(loss, mask, reduction)


class AsymmetricLoss(LabelLoss):
    r"""Asymmetric loss, ASL (Ridnik et al., ICCV 2021).

    :func:`ltml.functional.asymmetric_loss` as a module: separate focusing of positives and
    negatives, :math:`-y (1-p)^{\gamma_+} \log p - (1-y) p_m^{\gamma_-} \log(1 - p_m)` with the
    shifted probability :math:`p_m = \max(p - m, 0)` of the negatives.

    Defaults are the paper's recommended values (:math:`\gamma_+ = 0`, :math:`\gamma_- = 4`,
    :math:`m = 0.05`, the values of the authors' training script) with the focusing weight's
    gradient, as in the paper's formula. The authors' class differs in two defaults:
    :math:`\gamma_+ = 1` and ``disable_torch_grad_focal_loss=True`` (here
    ``detach_focal_weight=True``). It also **sums** the loss over the batch and the classes:
    ``reduction="sum"`` reproduces that value, :math:`N \cdot C` times the default mean over
    the known elements.

    Parameters
    ----------
    gamma_pos, gamma_neg : float
        Focusing exponents :math:`\gamma_+, \gamma_-`.
    clip : float
        Probability margin :math:`m` of the negatives.
    eps : float
        Lower clamp of the logarithms' arguments, in [1.2e-38, 1) (float32's smallest
        normal number: the loss computes in at least float32).
    detach_focal_weight : bool
        Compute the focusing weight without gradient (the authors' code default).
    weight : Tensor or sequence, shape (C,) or (2, C), optional
        Per-class weight, as ``weight`` of :func:`ltml.functional.asymmetric_loss` (default:
        none); finite and non-negative.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"`` (the authors' code), or ``"none"``.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor or None
        The per-class weights, float32 (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import AsymmetricLoss
    >>> logits, targets = torch.tensor([[2.0, -1.0], [0.5, 3.0]]), torch.tensor([[1, 0], [0, 1]])
    >>> round(AsymmetricLoss()(logits, targets).item(), 4)
    0.0668
    >>> reference = AsymmetricLoss(gamma_pos=1.0, detach_focal_weight=True, reduction="sum")
    >>> round(reference(logits, targets).item(), 4)  # the authors' class defaults and scale
    0.1093
    """

    _repr_fields = ("gamma_pos", "gamma_neg", "clip", "eps", "detach_focal_weight", "weight")
    weight: Tensor | None

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        *,
        detach_focal_weight: bool = False,
        weight: Any = None,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_asymmetric(gamma_pos, gamma_neg, clip, eps, detach_focal_weight)
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.detach_focal_weight = detach_focal_weight
        self.register_buffer("weight", weight_buffer(weight))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        check_classes(logits, self.weight)
        return asymmetric_loss(
            logits,
            targets,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            clip=self.clip,
            eps=self.eps,
            detach_focal_weight=self.detach_focal_weight,
            weight=self.weight,
            reduction=self.reduction,
            unknown=self.unknown,
        )
