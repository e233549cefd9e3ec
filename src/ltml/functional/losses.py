"""Loss functionals: the multi-label losses of :mod:`ltml.losses` as stateless functions.

Every loss is written as a per-element ``(N, C)`` loss, computed for all elements with unknown
targets (-1) read as 0 (a negative) so that every value is finite, then handed to ``_reduce``: the
one place where the unknown-label policy is applied (``unknown="ignore"`` masks those elements,
``"negative"`` keeps them as the negatives they were computed as), then ``reduction``. Logits
are computed in at least float32 (float16 / bfloat16 inputs, as under autocast, are upcast) and
never modified in place.

Targets may be soft (any value in [0, 1], as mixup or label smoothing make them) wherever a loss
defines a soft form, given in its docstring; the losses whose definition needs 0 / 1 labels
(Distribution-Balanced, COMIC's Multi-Focal Modifier and label correction) refuse them with a
``ValueError`` naming ``targets``. For 0 / 1 targets every soft form gives the hard formula's
values, to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._deprecation import renamed_keyword
from .._validation import (
    as_class_vector,
    as_logits,
    as_tensor,
    assert_on_device,
    check_choice,
    check_finite,
    check_int,
    check_labels,
    check_probability,
    check_reduction,
    check_same_shape,
    check_scalar,
    check_tensor,
    check_unknown,
    counts_tensor,
    sync_free,
)
from ..stats import class_weights

__all__ = [
    "Reduction",
    "Unknown",
    "asymmetric_loss",
    "bce",
    "cross_branch_consistency",
    "distribution_balanced_loss",
    "focal_loss",
    "logit_compensated_bce",
    "multi_focal_modifier_loss",
    "reflective_label_correction",
]

Reduction = Literal["mean", "sum", "none"]
Unknown = Literal["ignore", "negative"]

_LABELS = "`targets` must contain only values in {0, 1, -1}"
_SOFT_LABELS = "`targets` must contain only values in {-1} ∪ [0, 1]"


def _as_logits(x: Any, name: str, num_classes: int | None = None) -> Tensor:
    """Check a logit matrix's type and shape; return it in at least float32 (read only)."""
    z = as_logits(x, name, num_classes)
    return z.to(torch.promote_types(z.dtype, torch.float32))


def _labels_valid(y: Tensor, soft: bool) -> Tensor:
    """Bool scalar tensor: every value of ``y`` is -1, 0 or 1 (with ``soft``: -1 or in [0, 1]).

    No host sync.
    """
    if y.dtype == torch.bool or y.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=y.device)
    low, high = torch.aminmax(y)
    valid = (low >= -1) & (high <= 1)
    if not y.is_floating_point():
        return valid
    if soft:
        return valid & ((y >= 0) | (y == -1)).all()
    return valid & (y.frac() == 0).all()


def _check_values(
    logits: dict[str, Tensor], targets: Tensor | None = None, hard: str | None = None
) -> bool:
    """Check for finite logits and targets in {-1, 0, 1}; return whether a target may be -1.

    Targets may be soft (any value in [0, 1], or -1) unless ``hard`` names the loss that needs
    0 / 1 labels; its name then completes the error. CPU tensors (eager): checked at once and
    exactly, raising a ``ValueError`` that counts the bad values. Accelerator tensors, and
    anything while ``torch.compile`` traces: device-side assertions with the same wording, which
    never make the host wait for the device; a target may then be -1 as far as the host knows.
    """
    soft = hard is None
    first = next(iter(logits.values()))
    if sync_free(first):
        for name, x in logits.items():
            # x * 0 is 0 where x is finite and NaN elsewhere: its sum cannot overflow.
            assert_on_device(torch.isfinite((x * 0).sum()), f"`{name}` must be finite")
        if targets is not None:
            assert_on_device(_labels_valid(targets, soft), _SOFT_LABELS if soft else _LABELS)
        return True
    # Cheap sufficient tests first: a NaN or infinity makes the sum non-finite, the targets'
    # range and whole values cover the labels. Only when one fails do the exact checks run and
    # word the error (or find that a finite sum overflowed).
    ok = all(math.isfinite(x.sum().item()) for x in logits.values())
    low = 0.0
    if targets is not None and targets.dtype != torch.bool and targets.numel():
        low, high = (v.item() for v in torch.aminmax(targets))
        ok &= low >= -1 and high <= 1
        if ok and targets.is_floating_point() and (low < 0 or not soft):
            ok &= bool(_labels_valid(targets, soft))
    if not ok:
        for name, x in logits.items():
            check_finite(x, name)
        if targets is not None:
            try:
                check_labels(targets, "targets", soft=soft)
            except ValueError as error:
                if soft or not bool(((targets > 0) & (targets < 1)).any()):
                    raise
                raise ValueError(
                    f"{error} ({hard} needs 0 / 1 labels: it is not defined for soft targets)"
                ) from None
    return low < 0


def _prepare(
    logits: Any,
    targets: Any,
    num_classes: int | None,
    unknown: str,
    *,
    hard: str | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate a ``(logits, targets)`` pair: the first step of every supervised loss.

    Targets may be soft (in [0, 1]) unless ``hard`` names the loss, whose definition then needs
    0 / 1 labels.

    Returns
    -------
    z : Tensor, (N, C)
        The logits in the compute dtype (at least float32).
    t : Tensor, (N, C)
        The targets in [0, 1] in that dtype, unknown (-1) read as 0 so that every element's
        loss is finite.
    mask : Tensor of bool, (N, C), or None
        Where the target is unknown, for :func:`_reduce` to mask; None with the policy
        ``unknown="negative"`` (an unknown target is then a negative, as ``t`` reads it), or when
        the batch is known to be fully labelled, which is asked of the data only where that costs
        no device sync (CPU tensors, eager): elsewhere the mask is always applied.
    """
    check_unknown(unknown)
    z = _as_logits(logits, "logits", num_classes)
    y = as_tensor(targets, "targets").to(z.device)
    check_same_shape(z, y, "logits", "targets")
    if not _check_values({"logits": logits}, y, hard) or y.dtype == torch.bool:
        return z, y.to(z.dtype), None
    return z, y.clamp(min=0).to(z.dtype), y < 0 if unknown == "ignore" else None


def _reduce(loss: Tensor, mask: Tensor | None, reduction: str) -> Tensor:
    """Mask the elements whose target is unknown and ignored, then apply ``reduction``.

    The last step of every loss, and the one place of the unknown-label policy (``mask`` from
    :func:`_prepare`). Masked elements become 0 and pass no gradient. ``"mean"`` divides by the
    number of unmasked elements (the result is 0, not NaN, when there is none).
    """
    if mask is not None:
        loss = loss.masked_fill(mask, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    if mask is None:
        return loss.mean()
    return loss.sum() / (loss.numel() - mask.sum()).clamp(min=1)


def _check_weight(weight: Any, num_classes: int) -> Tensor | None:
    """Check per-class weights: ``(C,)``, or ``(2, C)`` for positives and negatives."""
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        return None if weight is None else as_class_vector(weight, "weight", num_classes)
    if weight.dtype == torch.bool:
        raise TypeError(f"`weight` must hold real numbers, got dtype {weight.dtype}")
    if tuple(weight.shape) != (2, num_classes):
        raise ValueError(
            f"`weight` must have shape ({num_classes},) or (2, {num_classes}) (one value per "
            f"class, or per class for positives and negatives), got shape {tuple(weight.shape)}"
        )
    return weight


def _per_class(value: Any, name: str, num_classes: int | None = None) -> Tensor | float:
    """Check a per-class parameter (compensation): a ``(C,)`` vector, or one number for all."""
    if isinstance(value, Tensor) and value.ndim == 0:
        return check_tensor(value, name)
    if isinstance(value, Tensor | np.ndarray) or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes)
    ):
        return as_class_vector(value, name, num_classes)
    return check_scalar(value, name)


def _by_label(t: Tensor, pos: Tensor | float, neg: Tensor | float) -> Tensor:
    """``pos`` where the 0 / 1 target ``t`` is 1, ``neg`` where it is 0.

    Per-class values broadcast over the batch. Exact, as multiplying by 0 or 1 is, and several
    times faster than ``torch.where`` with broadcast operands on the CPU, forward and backward.
    """
    return t * pos + (1.0 - t) * neg


def _element_weight(weight: Tensor | None, t: Tensor) -> Tensor | None:
    """Per-class weights as the weight of each element.

    ``(C,)`` (and scalars) broadcast; ``(2, C)`` gives row 0 to positive targets, row 1 to
    negative ones.
    """
    if weight is None:
        return None
    w = weight.to(t)
    return _by_label(t, w[0], w[1]) if w.ndim == 2 else w


def _with_alpha(weight: Tensor | None, alpha: float, t: Tensor) -> Tensor:
    """Fold the focal balance into ``(2, C)`` weights.

    ``alpha`` times the positives' weight, ``1 - alpha`` times the negatives'.
    """
    w = torch.ones((1,), dtype=t.dtype, device=t.device) if weight is None else weight.to(t)
    pos, neg = (w[0], w[1]) if w.ndim == 2 else (w.reshape(-1), w.reshape(-1))
    return torch.stack([alpha * pos, (1.0 - alpha) * neg])


def _modulated(loss: Tensor, x: Tensor, t: Tensor, gamma: float, *, soft: bool = False) -> Tensor:
    """Focal modulation of a per-element BCE of logits ``x``: ``loss * (1 - p_t)^gamma``.

    ``1 - p_t = sigmoid(-s)`` with ``s`` the logit signed by the 0 / 1 target ``t``, exact where
    ``p_t`` is close to 1. With ``soft`` the target may be any value in [0, 1]:
    ``1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)``, the same values (to the bit) for 0 / 1.
    Below ``gamma = 1`` the power's derivative at 0 (a saturated element) is infinite, so there
    the factor is computed as ``exp(gamma * log(1 - p_t))``.
    """
    if gamma == 0:
        return loss
    if soft:
        if gamma < 1:
            # log(t e^a + (1 - t) e^b), exactly a where t = 1 and b where t = 0
            log_q = torch.logaddexp(
                torch.log(t) + F.logsigmoid(-x), torch.log1p(-t) + F.logsigmoid(x)
            )
            return loss * torch.exp(gamma * log_q)
        return loss * (t * torch.sigmoid(-x) + (1.0 - t) * torch.sigmoid(x)).pow(gamma)
    minus_s = x * (1.0 - 2.0 * t)
    if gamma < 1:
        return loss * torch.exp(gamma * F.logsigmoid(minus_s))
    return loss * torch.sigmoid(minus_s).pow(gamma)


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
    z, t, mask = _prepare(logits, targets, None, unknown)
    weight = _check_weight(weight, z.shape[1])
    # torch's fused kernel, forward and backward
    loss = F.binary_cross_entropy_with_logits(z, t, _element_weight(weight, t), reduction="none")
    return _reduce(loss, mask, reduction)


def _check_focal_hyperparameters(gamma: Any, alpha: Any) -> None:
    check_scalar(gamma, "gamma", low=0.0)
    if alpha is not None:
        check_probability(alpha, "alpha")


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
    _check_focal_hyperparameters(gamma, alpha)
    z, t, mask = _prepare(logits, targets, None, unknown)
    weight = _check_weight(weight, z.shape[1])
    if alpha is not None:
        weight = _with_alpha(weight, alpha, t)
    loss = F.binary_cross_entropy_with_logits(z, t, _element_weight(weight, t), reduction="none")
    return _reduce(_modulated(loss, z, t, gamma, soft=True), mask, reduction)


def _logit_compensated_bce(
    logits: Tensor,
    targets: Any,
    omega: Tensor,
    sigma_pos: Tensor | float,
    mu_pos: Tensor | float,
    sigma_neg: Tensor | float,
    mu_neg: Tensor | float,
    reduction: str,
    unknown: str,
) -> Tensor:
    """Eq. 2 of Guo & Wang for validated ``(2, C)`` weights ``omega`` (positives, negatives)."""
    z, t, mask = _prepare(logits, targets, omega.shape[1], unknown)
    w = omega.to(z)
    # One affine map per element, chosen by its label; a single one when positives and
    # negatives share their compensation (the tied guard). A float becomes a tensor filled on
    # the device (a tensor made from a Python number would be a host-to-device copy).
    sp, mp, sn, mn = (
        v.to(z) if isinstance(v, Tensor) else z.new_full((), v)
        for v in (sigma_pos, mu_pos, sigma_neg, mu_neg)
    )
    if sigma_pos is sigma_neg and mu_pos is mu_neg:
        x = torch.addcmul(mp, z, sp)
    else:
        # neg + t (pos - neg): the negatives' value where t = 0, the positives' where t = 1
        # (exactly when the two are within a factor 2, else to rounding); fewer passes than a
        # selection, forward and backward.
        x = torch.addcmul(torch.addcmul(mn, t, mp - mn), z, torch.addcmul(sn, t, sp - sn))
    # omega as torch's (weight, pos_weight): e^p on every element, e^(1-p) / e^p on positives;
    # one fused kernel, forward and backward.
    loss = F.binary_cross_entropy_with_logits(
        x, t, weight=w[1], pos_weight=w[0] / w[1], reduction="none"
    )
    return _reduce(loss, mask, reduction)


@renamed_keyword("num_samples", "num_images")
def logit_compensated_bce(
    logits: Tensor,
    targets: Any,
    class_counts: Any,
    num_images: int,
    sigma_pos: Tensor | float = 1.0,
    mu_pos: Tensor | float = 0.0,
    sigma_neg: Tensor | float = 1.0,
    mu_neg: Tensor | float = 0.0,
    *,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""Weighted BCE with logit compensation (Guo & Wang, CVPR 2021, Eq. 2).

    .. math::
        L_i = -\frac{1}{K} \sum_k \omega_{ik} \,[\,
              y_{ik} \log \varsigma(u_{ik} \sigma^p_k + \mu^p_k)
              + (1 - y_{ik}) \log (1 - \varsigma(u_{ik} \sigma^n_k + \mu^n_k)) \,],

    .. math::
        \omega_{ik} = y_{ik}\, e^{1 - p_k} + (1 - y_{ik})\, e^{p_k}, \qquad p_k = n_k / N,

    the weights of ``ltml.class_weights(class_counts, num_images, method="omega")``.

    **Soft targets** :math:`y \in [0, 1]`: each of the two terms keeps its weight,
    :math:`y\, e^{1 - p_k}` and :math:`(1 - y)\, e^{p_k}`, and both use the compensated logit
    :math:`u (\sigma^n_k + y(\sigma^p_k - \sigma^n_k)) + \mu^n_k + y(\mu^p_k - \mu^n_k)`: the
    positives' map where :math:`y = 1`, the negatives' where :math:`y = 0`, one map for every
    target when the two are tied (``guard="tied"`` of the module, or the defaults).

    The stateless form: pass the compensation parameters yourself (defaults: identity, which
    gives the :math:`\omega`-weighted BCE). :class:`ltml.losses.LogitCompensatedBCE` holds them
    as learnable parameters and offers a guard against their degenerate direction.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`u`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels or soft targets in [0, 1]; -1 = unknown, ignored.
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class (0 is allowed).
    num_images : int
        :math:`N`, the number of training images (>= every count). Formerly ``num_samples``
        (deprecated).
    sigma_pos, mu_pos, sigma_neg, mu_neg : Tensor of shape (C,), or float
        :math:`\sigma^p, \mu^p, \sigma^n, \mu^n`.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` averages over the known elements: with no unknown label this is the paper's
        :math:`\frac{1}{K}\sum_k` followed by the mean over images.
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
    >>> from ltml.functional import logit_compensated_bce
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [0, 1]])
    >>> round(logit_compensated_bce(logits, targets, [90, 10], 100).item(), 4)
    0.7505
    """
    check_reduction(reduction)
    counts = counts_tensor(class_counts, num_images)
    omega = class_weights(counts, num_images, method="omega")
    num_classes = omega.shape[1]
    return _logit_compensated_bce(
        logits,
        targets,
        omega,
        _per_class(sigma_pos, "sigma_pos", num_classes),
        _per_class(mu_pos, "mu_pos", num_classes),
        _per_class(sigma_neg, "sigma_neg", num_classes),
        _per_class(mu_neg, "mu_neg", num_classes),
        reduction,
        unknown,
    )


def _db_statistics(
    class_counts: Any, num_images: int, *, kappa: float, neg_scale: float
) -> tuple[Tensor, Tensor]:
    """Inverse class frequency and the logit shift ``b_k = -(κ/λ) log(N / n_k - 1)`` (float32).

    Counts are clamped to ``[1, N - 1]`` first: a class with no positive (or no negative)
    training image would give an infinite weight or shift. The inverse frequency is
    :func:`ltml.class_weights`'s, normalised to mean 1: the re-balanced weight only uses ratios
    of it.
    """
    check_int(num_images, "num_images", low=2)
    check_scalar(kappa, "kappa", low=0.0)
    counts = counts_tensor(class_counts, num_images).clamp(1, num_images - 1)
    bias = -(kappa / neg_scale) * torch.log(num_images / counts - 1.0)
    return class_weights(counts, method="inverse"), bias.to(torch.float32)


def _check_db_hyperparameters(
    alpha: Any, beta: Any, mu: Any, neg_scale: Any, gamma: Any, scale: Any
) -> None:
    check_scalar(alpha, "alpha", low=0.0)
    check_scalar(beta, "beta", low=0.0)
    check_scalar(mu, "mu")
    check_scalar(neg_scale, "neg_scale", low=0.0, low_open=True)
    check_scalar(gamma, "gamma", low=0.0)
    check_scalar(scale, "scale", low=0.0, low_open=True)


def _distribution_balanced_loss(
    logits: Tensor,
    targets: Any,
    inv_freq: Tensor,
    bias: Tensor,
    *,
    alpha: float,
    beta: float,
    mu: float,
    neg_scale: float,
    gamma: float,
    scale: float,
    reduction: str,
    unknown: str,
) -> Tensor:
    """DB loss for validated class statistics (inverse frequency, ``b_k``)."""
    z, t, mask = _prepare(
        logits, targets, inv_freq.numel(), unknown, hard="the Distribution-Balanced loss"
    )
    inv = inv_freq.to(z)
    # Re-balanced weight: r_ik = (1/n_k) / sum_k' y_ik'/n_k', for positives and negatives alike.
    # An image with no known positive has r = +inf, hence the largest weight alpha + 1; beta = 0
    # makes the weight alpha + 1/2 everywhere, there too (not 0 * inf = NaN). (A sum, not a
    # matmul, which autocast would run in low precision.)
    r = inv / (t * inv).sum(dim=1, keepdim=True)
    weight = alpha + (torch.sigmoid(beta * (r - mu)) if beta > 0 else 0.5)
    # Negative-tolerant regularisation: shift by b_k, then negatives' logits x λ, weights / λ.
    lam = _by_label(t, 1.0, neg_scale)
    x = (z + bias.to(z)) * lam
    loss = F.binary_cross_entropy_with_logits(x, t, weight=weight * (scale / lam), reduction="none")
    return _reduce(_modulated(loss, x, t, gamma), mask, reduction)


@renamed_keyword("num_samples", "num_images")
def distribution_balanced_loss(
    logits: Tensor,
    targets: Any,
    class_counts: Any,
    num_images: int,
    *,
    alpha: float = 0.1,
    beta: float = 10.0,
    mu: float = 0.3,
    kappa: float = 0.05,
    neg_scale: float = 5.0,
    gamma: float = 2.0,
    scale: float = 2.0,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""Distribution-Balanced loss (Wu et al., ECCV 2020), focal form ("DB-Focal").

    Re-balanced weighting (their Eq. 4-5), for every element of image :math:`i`:

    .. math::
        r_{ik} = \frac{1 / n_k}{\sum_{k'} y_{ik'} / n_{k'}}, \qquad
        w_{ik} = \alpha + \varsigma(\beta (r_{ik} - \mu)).

    Negative-tolerant regularisation (their Eq. 7-8) with the prior-based shift
    :math:`b_k = -\frac{\kappa}{\lambda} \log(N / n_k - 1)` and :math:`z' = z + b`:

    .. math::
        \ell_{ik} = s\, w_{ik} \,(1 - p_t)^\gamma \,[\, -y_{ik} \log \varsigma(z'_{ik})
              - \tfrac{1}{\lambda} (1 - y_{ik}) \log (1 - \varsigma(\lambda z'_{ik})) \,],

    where :math:`p_t` is the probability of the true label under the same (scaled) logit, and
    :math:`s` = ``scale`` is the constant factor of the authors' configurations
    (``balance_param=2``). Defaults are their VOC-LT setting; COCO-LT uses ``mu=0.2``,
    ``neg_scale=2`` (see :class:`ltml.losses.DistributionBalancedLoss`'s ``preset``).

    Counts are clamped to ``[1, N - 1]``: a class with 0 (or N) training positives would have an
    infinite weight (or shift). Unknown (-1) targets are ignored, also in :math:`r_{ik}`. The
    logits are not modified (the authors' code adds :math:`b` to them in place).

    **Hard labels only.** :math:`r_{ik}` and the negative-tolerant term are defined by which
    labels of the image are positive; soft targets (values strictly between 0 and 1) raise a
    ``ValueError``. Train with mixup under another loss.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`z`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels (no soft targets); -1 = unknown, ignored.
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class.
    num_images : int
        :math:`N`, the number of training images (>= 2). Formerly ``num_samples``
        (deprecated).
    alpha, beta, mu : float
        Smoothing of the re-balanced weight: floor :math:`\alpha`, slope :math:`\beta`,
        centre :math:`\mu`.
    kappa : float
        Scale :math:`\kappa` of the prior-based logit shift.
    neg_scale : float
        :math:`\lambda > 0`, the negative-tolerance factor.
    gamma : float
        Focal exponent; 0 gives DB with plain BCE.
    scale : float
        Constant factor :math:`s` of the whole loss.
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
    >>> from ltml.functional import distribution_balanced_loss
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [0, 1]])
    >>> round(distribution_balanced_loss(logits, targets, [90, 10], 100).item(), 4)
    0.0548
    """
    check_reduction(reduction)
    _check_db_hyperparameters(alpha, beta, mu, neg_scale, gamma, scale)
    inv_freq, bias = _db_statistics(class_counts, num_images, kappa=kappa, neg_scale=neg_scale)
    return _distribution_balanced_loss(
        logits,
        targets,
        inv_freq,
        bias,
        alpha=alpha,
        beta=beta,
        mu=mu,
        neg_scale=neg_scale,
        gamma=gamma,
        scale=scale,
        reduction=reduction,
        unknown=unknown,
    )


def _check_consistency_options(space: Any, detach: Any) -> None:
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
    a = _as_logits(first, "first")
    b = _as_logits(second, "second")
    check_same_shape(a, b, "first", "second")
    _check_values({"first": first, "second": second})
    if detach == "first":
        a = a.detach()
    elif detach == "second":
        b = b.detach()
    if space == "prob":
        a, b = torch.sigmoid(a), torch.sigmoid(b)
    if a.numel() == 0:
        return _reduce(a - b, None, reduction)
    return F.mse_loss(a, b, reduction=reduction)


def _check_asymmetric(gamma_pos: float, gamma_neg: float, clip: float, eps: float) -> None:
    check_scalar(gamma_pos, "gamma_pos", low=0.0)
    check_scalar(gamma_neg, "gamma_neg", low=0.0)
    check_scalar(clip, "clip", low=0.0, high=1.0, high_open=True)
    check_scalar(eps, "eps", low=0.0, low_open=True)


def _asymmetric_terms(
    p_pos: Tensor,
    p_neg: Tensor,
    t: Tensor,
    gamma_pos: Tensor | float,
    gamma_neg: Tensor | float,
    eps: float,
    detach_focal_weight: bool,
) -> Tensor:
    """``-(1 - p_t)^γ [t log max(p_pos, eps) + (1 - t) log max(p_neg, eps)]``.

    ``p_t = t p_pos + (1 - t) p_neg`` and ``γ = t γ_pos + (1 - t) γ_neg`` (scalars or per-class
    vectors) for a target ``t`` in [0, 1]: for a 0 / 1 target, the focal term of ``p_pos`` or
    ``p_neg`` alone, exactly. ASL and COMIC's losses differ only in what they pass as ``p_pos``
    and ``p_neg``.
    """
    p_t = t * p_pos + (1.0 - t) * p_neg
    gamma = _by_label(t, gamma_pos, gamma_neg)
    q = 1.0 - p_t
    # pow's gradient is 0 where the exponent is 0, but infinite at a base of 0 for an exponent
    # below 1: where p_t = 1 (saturated, or a negative below the margin) the loss is flat, and
    # q passes it no gradient (not inf * 0 = NaN).
    focus = torch.where(q > 0, q, q.detach()).pow(gamma)
    if detach_focal_weight:
        focus = focus.detach()
    log_p = t * torch.log(p_pos.clamp(min=eps)) + (1.0 - t) * torch.log(p_neg.clamp(min=eps))
    return -focus * log_p


def _shifted_negative(p: Tensor, clip: float) -> Tensor:
    """``1 - max(p - clip, 0)``: a negative's probability with ASL's margin (``clip``)."""
    return 1.0 - (p - clip).clamp(min=0.0) if clip > 0 else 1.0 - p


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
    is interpolated, as in :func:`bce`.

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
        Lower clamp of the logarithms' arguments.
    detach_focal_weight : bool
        Compute the focusing weight without gradient (the authors' code default).
    weight : Tensor, shape (C,), optional
        Per-class weight :math:`w_k` (default 1).
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
    _check_asymmetric(gamma_pos, gamma_neg, clip, eps)
    z, t, mask = _prepare(logits, targets, None, unknown)
    weight = _element_weight(_check_weight(weight, z.shape[1]), t)
    p = torch.sigmoid(z)
    loss = _asymmetric_terms(
        p, _shifted_negative(p, clip), t, gamma_pos, gamma_neg, eps, detach_focal_weight
    )
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, mask, reduction)


def _frequency_weights(class_counts: Any, power: float) -> Tensor:
    r"""COMIC's class weights :math:`w_c = (1 - \log(n_c / n_{max}))^{q}` (float64, shape (C,)).

    1 for the most frequent class, growing slowly towards the rarest. A count of 0 is read as 1.
    """
    check_scalar(power, "weight_power", low=0.0)
    counts = counts_tensor(class_counts).clamp(min=1)
    return (1.0 - torch.log(counts / counts.max())).pow(power)


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

    An asymmetric loss (:func:`asymmetric_loss`) with a class weight, a class-dependent
    focusing of the negatives and a co-occurrence modifier of the positives. With
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
        Lower clamp of the logarithms' arguments.
    weight_power : float
        :math:`q` of the class weight (0: every class weighs 1).
    neg_boost : float
        :math:`b`, the released code's factor on the co-occurring negatives (1: none).
    detach_focal_weight : bool
        Compute the focusing weight without gradient (the released code).
    reduction : {"mean", "sum", "none"}
        As in :func:`asymmetric_loss`.
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
    _check_asymmetric(gamma_pos, gamma_neg, clip, eps)
    check_scalar(neg_boost, "neg_boost", low=1.0)
    w = _frequency_weights(class_counts, weight_power)
    z, t, mask = _prepare(logits, targets, w.numel(), unknown, hard="the Multi-Focal Modifier loss")
    if cooccurrence is not None and tuple(cooccurrence.shape) != (w.numel(), w.numel()):
        raise ValueError(
            f"`cooccurrence` must have shape ({w.numel()}, {w.numel()}), "
            f"got {tuple(cooccurrence.shape)}"
        )
    return _multi_focal(
        z, t, mask, w.to(z), cooccurrence, gamma_pos, gamma_neg, clip, eps, neg_boost,
        detach_focal_weight, reduction,
    )  # fmt: skip


def _multi_focal(
    z: Tensor,
    t: Tensor,
    mask: Tensor | None,
    w: Tensor,
    cooccurrence: Tensor | None,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
    eps: float,
    neg_boost: float,
    detach_focal_weight: bool,
    reduction: str,
) -> Tensor:
    """Return the MFM loss of :func:`_prepare`'d ``(z, t, mask)`` and class weights ``w``.

    Also the loss of the Reflective Label Corrector.
    """
    p = torch.sigmoid(z)
    p_pos, p_neg = p, _shifted_negative(p, clip)
    if cooccurrence is not None:
        a = _cooccurrence_attention(t, cooccurrence)
        p_pos = p * (1.0 - a)
        if neg_boost != 1.0:
            p_neg = torch.where(a != 0, p_neg * neg_boost, p_neg).clamp(max=1.0)
    loss = w * _asymmetric_terms(
        p_pos, p_neg, t, gamma_pos, gamma_neg + w, eps, detach_focal_weight
    )
    return _reduce(loss, mask, reduction)


def reflective_label_correction(
    logits: Tensor,
    targets: Any,
    threshold: Tensor | float,
    *,
    candidates: Literal["unknown", "unobserved"] = "unknown",
) -> Tensor:
    r"""Pseudo-positives where the model is confident: COMIC's label correction, one step.

    A candidate entry becomes 1 where :math:`\varsigma(z_{ic}) > t_c`; every other entry is
    returned as it was. The candidates are the unknown entries (-1, default) or, for labels
    stored in COMIC's convention where a missing label is a 0, every entry that is not a known
    positive (``"unobserved"``). :class:`ltml.losses.ReflectiveLabelCorrector` holds the
    class-aware threshold :math:`t_c = \max(\tau, P_c)` and the loss on the corrected labels.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 / -1 labels (no soft targets).
    threshold : Tensor of shape (C,), or float
        Per-class probability threshold :math:`t_c`.
    candidates : {"unknown", "unobserved"}
        Which entries may become pseudo-positives.

    Returns
    -------
    Tensor, shape (N, C)
        The corrected targets, in ``targets``' dtype and on ``logits``' device (no gradient).

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import reflective_label_correction
    >>> logits = torch.tensor([[2.0, 3.0, -1.0], [0.5, 3.0, 2.0]])
    >>> targets = torch.tensor([[1, -1, -1], [0, 1, 0]])
    >>> reflective_label_correction(logits, targets, 0.7)
    tensor([[ 1,  1, -1],
            [ 0,  1,  0]])
    >>> reflective_label_correction(logits, targets, 0.7, candidates="unobserved")
    tensor([[1, 1, 0],
            [0, 1, 1]])
    """
    if candidates not in ("unknown", "unobserved"):
        raise ValueError(f"`candidates` must be 'unknown' or 'unobserved', got {candidates!r}")
    z = _as_logits(logits, "logits")
    y = as_tensor(targets, "targets").to(z.device)
    check_same_shape(z, y, "logits", "targets")
    _check_values({"logits": logits}, y, hard="the Reflective Label Corrector")
    t = torch.as_tensor(
        _per_class(threshold, "threshold", z.shape[1]), dtype=z.dtype, device=z.device
    )
    with torch.no_grad():
        candidate = y < 0 if candidates == "unknown" else y <= 0
        if candidates == "unobserved":
            y = y.clamp(min=0)  # COMIC's convention: a missing label reads as 0
        return torch.where(candidate & (torch.sigmoid(z) > t), torch.ones_like(y), y)
