"""What every loss of :mod:`ltml.losses` shares: inputs, reduction, focal terms, module bases.

Private to the package (its names need no underscore). A loss is written as a per-element
``(N, C)`` loss computed for every element, an unknown target (-1) read as 0 so that every value
is finite (:func:`prepare`), then handed to :func:`reduce`: the one place where the unknown-label
policy is applied (``unknown="ignore"`` masks those elements, ``"negative"`` keeps them as the
negatives they were computed as), then ``reduction``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import Self

from .._label_forms import read_labels, shape_of
from .._validation import (
    as_class_vector,
    as_logits,
    as_tensor,
    assert_on_device,
    check_bool,
    check_finite,
    check_labels,
    check_non_negative,
    check_reduction,
    check_same_shape,
    check_scalar,
    check_tensor,
    check_unknown,
    counts_tensor,
    finite_contract,
    labels_contract,
    sync_free,
)
from ..stats import class_counts

Reduction = Literal["mean", "sum", "none"]
Unknown = Literal["ignore", "negative"]

# --------------------------------------------------------------------------------------------------
# Logits and targets
# --------------------------------------------------------------------------------------------------


def as_compute_logits(x: Any, name: str, num_classes: int | None = None) -> Tensor:
    """Check a logit matrix's type and shape; return it in at least float32 (read only)."""
    z = as_logits(x, name, num_classes)
    return z.to(torch.promote_types(z.dtype, torch.float32))


def labels_valid(y: Tensor, soft: bool) -> Tensor:
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


def check_finite_values(tensors: Mapping[str, Tensor]) -> None:
    """Check that every tensor of ``tensors`` (by argument name) holds finite values only.

    CPU tensors (eager): at once and exactly, with a ``ValueError`` that counts the bad values.
    Accelerator tensors, and anything while ``torch.compile`` traces: device-side assertions
    with the same wording, which never make the host wait for the device (here and in
    :func:`check_target_values`).
    """
    for name, x in tensors.items():
        if sync_free(x):
            # x * 0 is 0 where x is finite and NaN elsewhere: its sum cannot overflow.
            assert_on_device(torch.isfinite((x * 0).sum()), finite_contract(name))
        else:
            check_finite(x, name)


def check_target_values(targets: Tensor, *, soft: bool = True, loss: str = "") -> None:
    """Check for targets in {-1, 0, 1}, or with ``soft`` in {-1} ∪ [0, 1].

    Where the loss needs 0 / 1 labels (``soft=False``), an error for a soft target says that
    ``loss`` (its name) is not defined for them.
    """
    if sync_free(targets):
        assert_on_device(labels_valid(targets, soft), labels_contract("targets", soft=soft))
        return
    if targets.dtype == torch.bool or not targets.numel():
        return
    # Cheap sufficient tests first: the range, then (floats) the whole values. Only when one
    # fails does the exact check run and word the error.
    low, high = (v.item() for v in torch.aminmax(targets))
    ok = low >= -1 and high <= 1
    if ok and targets.is_floating_point() and (low < 0 or not soft):
        ok = bool(labels_valid(targets, soft))
    if ok:
        return
    try:
        check_labels(targets, "targets", soft=soft)
    except ValueError as error:
        if soft or not bool(((targets > 0) & (targets < 1)).any()):
            raise
        raise ValueError(
            f"{error} ({loss} needs 0 / 1 labels: it is not defined for soft targets)"
        ) from None


def may_be_unknown(targets: Tensor) -> bool:
    """Whether a target may be -1: exactly for CPU tensors (eager), else True (no sync)."""
    if sync_free(targets):
        return True
    if targets.dtype == torch.bool or not targets.numel():
        return False
    return bool(targets.min() < 0)


def check_pair(
    logits: Any, targets: Any, num_classes: int | None = None, *, soft: bool = True, loss: str = ""
) -> tuple[Tensor, Tensor]:
    """Check a ``(logits, targets)`` pair: forms, shapes, finite logits, targets' values.

    Returns the logits in the compute dtype (at least float32) and the targets as given, on
    the logits' device. ``soft`` and ``loss`` as in :func:`prepare`.
    """
    z = as_compute_logits(logits, "logits", num_classes)
    y = as_tensor(targets, "targets").to(z.device)
    check_same_shape(z, y, "logits", "targets")
    check_finite_values({"logits": logits})
    check_target_values(y, soft=soft, loss=loss)
    return z, y


def prepare(
    logits: Any,
    targets: Any,
    num_classes: int | None,
    unknown: str,
    *,
    soft: bool = True,
    loss: str = "",
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate a ``(logits, targets)`` pair: the first step of every supervised loss.

    Targets may be soft (in [0, 1]) unless ``soft=False``: the loss, named by ``loss`` in the
    error, then needs 0 / 1 labels.

    Returns
    -------
    z : Tensor, (N, C)
        The logits in the compute dtype (at least float32).
    t : Tensor, (N, C)
        The targets in [0, 1] in that dtype, unknown (-1) read as 0 so that every element's
        loss is finite.
    mask : Tensor of bool, (N, C), or None
        Where the target is unknown, for :func:`reduce` to mask; None with the policy
        ``unknown="negative"`` (an unknown target is then a negative, as ``t`` reads it), or when
        the batch is known to be fully labelled, which is asked of the data only where that costs
        no device sync (CPU tensors, eager): elsewhere the mask is always applied.
    """
    check_unknown(unknown)
    z, y = check_pair(logits, targets, num_classes, soft=soft, loss=loss)
    if y.dtype == torch.bool or not may_be_unknown(y):
        return z, y.to(z.dtype), None
    return z, y.clamp(min=0).to(z.dtype), y < 0 if unknown == "ignore" else None


def reduce(loss: Tensor, mask: Tensor | None, reduction: str) -> Tensor:
    """Mask the elements whose target is unknown and ignored, then apply ``reduction``.

    The last step of every loss, and the one place of the unknown-label policy (``mask`` from
    :func:`prepare`). Masked elements become 0 and pass no gradient. ``"mean"`` divides by the
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


# --------------------------------------------------------------------------------------------------
# Per-class values
# --------------------------------------------------------------------------------------------------


def check_weight(weight: Any, num_classes: int | None = None) -> Tensor | None:
    """Check per-class weights: ``(C,)``, or ``(2, C)`` for positives and negatives.

    ``num_classes`` None (a module's weight, before any logits): any ``C >= 1``.
    """
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        return None if weight is None else as_class_vector(weight, "weight", num_classes)
    check_tensor(weight, "weight")
    if weight.dtype == torch.bool:
        raise TypeError(f"`weight` must hold real numbers, got dtype {weight.dtype}")
    width_ok = weight.shape[1] > 0 if num_classes is None else weight.shape[1] == num_classes
    if weight.shape[0] != 2 or not width_ok:
        c = "C" if num_classes is None else num_classes
        raise ValueError(
            f"`weight` must have shape ({c},) or (2, {c}) (one value per class, or per class "
            f"for positives and negatives), got shape {tuple(weight.shape)}"
        )
    return weight


def weight_buffer(weight: Any) -> Tensor | None:
    """Check a module's ``weight`` as :func:`check_weight` does, and its values; as float32.

    Its values are checked once, when the module is built, where a host read costs nothing.
    """
    w = check_weight(weight)
    if w is None:
        return None
    check_finite(w, "weight")
    check_non_negative(w, "weight")
    return w.to(torch.float32)


def check_classes(logits: Any, values: Tensor | None) -> None:
    """Check a module's logits against its per-class ``values`` (C in their last dimension).

    A mismatch is then an error about the logits, not about what the module was built with.
    """
    if values is not None:
        as_logits(logits, "logits", values.shape[-1])


def per_class(value: Any, name: str, num_classes: int | None = None) -> Tensor | float:
    """Check a per-class parameter (compensation): a ``(C,)`` vector, or one number for all."""
    if isinstance(value, Tensor) and value.ndim == 0:
        return check_tensor(value, name)
    if isinstance(value, Tensor | np.ndarray) or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes)
    ):
        return as_class_vector(value, name, num_classes)
    return check_scalar(value, name)


def by_label(t: Tensor, pos: Tensor | float, neg: Tensor | float) -> Tensor:
    """``pos`` where the 0 / 1 target ``t`` is 1, ``neg`` where it is 0.

    Per-class values broadcast over the batch. Exact, as multiplying by 0 or 1 is, and several
    times faster than ``torch.where`` with broadcast operands on the CPU, forward and backward.
    """
    return t * pos + (1.0 - t) * neg


def element_weight(weight: Tensor | None, t: Tensor) -> Tensor | None:
    """Per-class weights as the weight of each element.

    ``(C,)`` (and scalars) broadcast; ``(2, C)`` gives row 0 to positive targets, row 1 to
    negative ones.
    """
    if weight is None:
        return None
    w = weight.to(t)
    return by_label(t, w[0], w[1]) if w.ndim == 2 else w


def comic_class_weights(class_counts: Any, power: float) -> Tensor:
    r"""COMIC's class weights :math:`w_c = (1 - \log(n_c / n_{max}))^{q}` (float64, shape (C,)).

    1 for the most frequent class, growing slowly towards the rarest. A count of 0 is read as 1.
    Those of the Multi-Focal Modifier loss and of the Reflective Label Corrector.
    """
    check_scalar(power, "weight_power", low=0.0)
    counts = counts_tensor(class_counts).clamp(min=1)
    return (1.0 - torch.log(counts / counts.max())).pow(power)


# --------------------------------------------------------------------------------------------------
# Focal terms
# --------------------------------------------------------------------------------------------------


def modulated(loss: Tensor, x: Tensor, t: Tensor, gamma: float, *, soft: bool = False) -> Tensor:
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


# The smallest ``eps``: float32's smallest normal number. The losses compute in at least
# float32, where a smaller clamp rounds to 0 (or a subnormal) and its logarithm is -inf.
EPS_MIN = float(torch.finfo(torch.float32).tiny)


def check_asymmetric(
    gamma_pos: Any, gamma_neg: Any, clip: Any, eps: Any, detach_focal_weight: Any
) -> None:
    """Check the hyper-parameters of the asymmetric focusing (ASL, and COMIC's losses)."""
    check_scalar(gamma_pos, "gamma_pos", low=0.0)
    check_scalar(gamma_neg, "gamma_neg", low=0.0)
    check_scalar(clip, "clip", low=0.0, high=1.0, high_open=True)
    check_scalar(eps, "eps", low=EPS_MIN, high=1.0, high_open=True)
    check_bool(detach_focal_weight, "detach_focal_weight")


def shifted_negative(p: Tensor, clip: float) -> Tensor:
    """``1 - max(p - clip, 0)``: a negative's probability with ASL's margin (``clip``)."""
    return 1.0 - (p - clip).clamp(min=0.0) if clip > 0 else 1.0 - p


def asymmetric_terms(
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
    gamma = by_label(t, gamma_pos, gamma_neg)
    q = 1.0 - p_t
    # pow's gradient is 0 where the exponent is 0, but infinite at a base of 0 for an exponent
    # below 1: where p_t = 1 (saturated, or a negative below the margin) the loss is flat, and
    # q passes it no gradient (not inf * 0 = NaN).
    focus = torch.where(q > 0, q, q.detach()).pow(gamma)
    if detach_focal_weight:
        focus = focus.detach()
    log_p = t * torch.log(p_pos.clamp(min=eps)) + (1.0 - t) * torch.log(p_neg.clamp(min=eps))
    return -focus * log_p


# --------------------------------------------------------------------------------------------------
# Module bases
# --------------------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """Show a hyper-parameter in a module's repr: a tensor by its shape, else by its repr."""
    return f"tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


class Loss(nn.Module):
    """Base: holds and validates ``reduction``; shows ``_repr_fields`` in the module's repr."""

    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def extra_repr(self) -> str:
        """Hyper-parameters, then ``reduction``: ``gamma=2.0, alpha=None, reduction='mean'``."""
        fields = (*self._repr_fields, "reduction")
        return ", ".join(f"{f}={shown(getattr(self, f))}" for f in fields)


class LabelLoss(Loss):
    """Base of the losses against targets: also holds the unknown-label policy ``unknown``."""

    def __init__(self, reduction: Reduction, unknown: Unknown) -> None:
        super().__init__(reduction)
        check_unknown(unknown)
        self.unknown: Unknown = unknown

    def extra_repr(self) -> str:
        """Hyper-parameters, then ``reduction`` and ``unknown``."""
        return f"{super().extra_repr()}, unknown={self.unknown!r}"


class FromLabels:
    """Mixin: build a loss from the training label matrix instead of class counts."""

    _needs_num_images: ClassVar[bool] = False

    @classmethod
    def from_labels(cls, labels: Any, **kwargs: Any) -> Self:
        """Build the loss from the training label matrix.

        Parameters
        ----------
        labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
            Training labels, 0 / 1, -1 = unknown (not counted as positive), in any form
            :func:`ltml.data.class_counts` takes (scipy / torch sparse matrices,
            :class:`ltml.VerifiedLabels`). The class counts are :func:`ltml.data.class_counts`
            of it and, where the loss needs it, ``N`` its number of rows.
        **kwargs
            The other arguments of the constructor.

        Returns
        -------
        The loss.
        """
        y = read_labels(labels, "labels")
        counts = class_counts(y)
        args = (counts, shape_of(y)[0]) if cls._needs_num_images else (counts,)
        return cls(*args, **kwargs)
