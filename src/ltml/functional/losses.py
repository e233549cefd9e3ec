"""Loss functionals: the multi-label losses of :mod:`ltml.losses` as stateless functions.

Every loss is written as a per-element ``(N, C)`` loss, computed for all elements with unknown
targets (-1) read as 0 so that every value is finite, then handed to ``_reduce``: the one place
where unknown targets are masked and ``reduction`` is applied. Logits are computed in at least
float32 (float16 / bfloat16 inputs, as under autocast, are upcast) and never modified in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._stats import class_prior, counts_tensor
from .._validation import (
    as_class_vector,
    as_logits,
    as_tensor,
    check_choice,
    check_finite,
    check_int,
    check_labels,
    check_probability,
    check_reduction,
    check_same_shape,
    check_scalar,
    check_tensor,
    is_compiling,
)

__all__ = [
    "Reduction",
    "bce",
    "cross_branch_consistency",
    "distribution_balanced_loss",
    "focal_loss",
    "logit_compensated_bce",
]

Reduction = Literal["mean", "sum", "none"]


def _as_logits(x: Any, name: str, num_classes: int | None = None) -> Tensor:
    """Check a logit matrix's type and shape; return it in at least float32 (read only)."""
    z = as_logits(x, name, num_classes)
    return z.to(torch.promote_types(z.dtype, torch.float32))


def _check_values(logits: dict[str, Tensor], targets: Tensor | None = None) -> None:
    """Finite logits and targets in {-1, 0, 1}, with a single device sync in the common case.

    Skipped while ``torch.compile`` traces (a data-dependent branch would break the graph).
    """
    if is_compiling():
        return
    # Cheap sufficient tests: a NaN or infinity makes the sum non-finite; integer labels within
    # [-1, 1] are valid. Only when one fails do the exact checks run (and word the error).
    ok = torch.stack([torch.isfinite(x.sum()) for x in logits.values()]).all()
    if targets is not None:
        if targets.is_floating_point():
            ok &= (targets == targets.round().clamp(-1, 1)).all()  # y in {-1, 0, 1}
        elif targets.dtype != torch.bool and targets.numel():
            low, high = torch.aminmax(targets)
            ok &= (low >= -1) & (high <= 1)
    if not bool(ok):
        for name, x in logits.items():
            check_finite(x, name)
        if targets is not None:
            check_labels(targets, "targets")


def _prepare(logits: Any, targets: Any, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """Validate a ``(logits, targets)`` pair; return both in the compute dtype (>= float32)."""
    z = _as_logits(logits, "logits", num_classes)
    y = as_tensor(targets, "targets").to(z.device)
    check_same_shape(z, y, "logits", "targets")
    _check_values({"logits": logits}, y)
    return z, y.to(z.dtype)


def _per_class(value: Any, name: str, num_classes: int | None = None) -> Tensor | float:
    """Check a per-class parameter (compensation): a ``(C,)`` vector, or one number for all."""
    if isinstance(value, Tensor) and value.ndim == 0:
        return check_tensor(value, name)
    if isinstance(value, Tensor | np.ndarray) or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes)
    ):
        return as_class_vector(value, name, num_classes)
    return check_scalar(value, name)


def _optional_weight(weight: Any, num_classes: int) -> Tensor | None:
    """Check the per-class ``weight`` of :func:`bce` / :func:`focal_loss`: None or ``(C,)``."""
    return None if weight is None else as_class_vector(weight, "weight", num_classes)


def _reduce(loss: Tensor, targets: Tensor | None, reduction: str) -> Tensor:
    """Mask the elements whose target is -1 (unknown), then apply ``reduction``.

    Masked elements become 0 and pass no gradient. ``"mean"`` divides by the number of known
    elements (the result is 0, not NaN, when there is none); without ``targets`` nothing is
    masked.
    """
    known_count: Tensor | int = loss.numel()
    if targets is not None:
        unknown = targets < 0
        # Fully labelled batches (the common case) skip the masking passes, forward and backward.
        if is_compiling() or bool(unknown.any()):
            loss = loss.masked_fill(unknown, 0.0)
            known_count = loss.numel() - unknown.sum()
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if isinstance(known_count, int):
        return loss.sum() / max(known_count, 1)
    return loss.sum() / known_count.clamp(min=1)


def _binary_terms(z: Tensor, t: Tensor) -> Tensor:
    """``s = z`` for positives and ``-z`` for negatives, so that ``-logsigmoid(s)`` is the BCE."""
    return torch.where(t > 0, z, -z)


def _focal_terms(s: Tensor, gamma: float) -> Tensor:
    """Return ``-(1 - p_t)^gamma log p_t``, ``p_t = sigmoid(s)``, from log-sigmoids only.

    Stable for any ``s``, as ``1 - p_t = sigmoid(-s)``.
    """
    log_pt = F.logsigmoid(s)
    if gamma == 0:
        return -log_pt
    return -torch.exp(gamma * F.logsigmoid(-s)) * log_pt


def bce(
    logits: Tensor,
    targets: Any,
    weight: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Binary cross-entropy with logits that ignores unknown (-1) targets.

    The plain multi-label loss (ERM): per element

    .. math::
        \ell_{ik} = -w_k \, [\, y_{ik} \log \varsigma(z_{ik})
                    + (1 - y_{ik}) \log (1 - \varsigma(z_{ik})) \,],

    with :math:`\varsigma` the sigmoid: where every target is known, the same as
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores, any floating dtype (computed in at least float32).
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, which contributes nothing (and no gradient).
    weight : Tensor, shape (C,), optional
        Per-class weight :math:`w_k` (default 1), e.g. :class:`ltml.losses.WeightedBCE`'s.
    reduction : {"mean", "sum", "none"}
        ``"mean"``: mean over the known elements; ``"sum"``: their sum; ``"none"``: the
        ``(N, C)`` per-element loss, 0 where the target is unknown.

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
    z, y = _prepare(logits, targets)
    weight = _optional_weight(weight, z.shape[1])
    # torch's fused kernel, forward and backward; unknown targets (read as 0) are masked after.
    loss = F.binary_cross_entropy_with_logits(
        z, y.clamp(min=0), None if weight is None else weight.to(z), reduction="none"
    )
    return _reduce(loss, y, reduction)


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
) -> Tensor:
    r"""Sigmoid focal loss (Lin et al., ICCV 2017, Eq. 5) that ignores unknown (-1) targets.

    .. math::
        \ell_{ik} = -w_k \, \alpha_t \, (1 - p_t)^\gamma \log p_t, \qquad
        p_t = \varsigma(z_{ik}) \text{ if } y_{ik} = 1 \text{ else } 1 - \varsigma(z_{ik}),

    with :math:`\alpha_t = \alpha` for positives and :math:`1 - \alpha` for negatives (1 when
    ``alpha`` is None). Computed from log-sigmoids only, so it is finite for any finite logit.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 = unknown, ignored.
    gamma : float
        Focusing parameter :math:`\gamma \ge 0`; 0 gives the (alpha-weighted) BCE.
    alpha : float, optional
        Positive-class balance in [0, 1]; None (default) applies none.
    weight : Tensor, shape (C,), optional
        Per-class weight :math:`w_k`, e.g. :class:`ltml.losses.ClassBalancedFocalLoss`'s.
    reduction : {"mean", "sum", "none"}
        As in :func:`bce`.

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
    z, y = _prepare(logits, targets)
    weight = _optional_weight(weight, z.shape[1])
    loss = _focal_terms(_binary_terms(z, y), gamma)
    if alpha is not None:
        loss = loss * torch.where(y > 0, alpha, 1.0 - alpha)
    if weight is not None:
        loss = loss * weight.to(z)
    return _reduce(loss, y, reduction)


def _logit_compensated_bce(
    logits: Tensor,
    targets: Any,
    prior: Tensor,
    sigma_pos: Tensor | float,
    mu_pos: Tensor | float,
    sigma_neg: Tensor | float,
    mu_neg: Tensor | float,
    reduction: str,
) -> Tensor:
    """Eq. 2 of Guo & Wang for a validated class prior ``p`` (C,)."""
    z, y = _prepare(logits, targets, prior.numel())
    pos = y > 0
    p = prior.to(z)
    omega = torch.where(pos, torch.exp(1.0 - p), torch.exp(p))
    # One affine map per element, chosen by its label: positives see (σ^p, μ^p), negatives
    # (σ^n, μ^n); then log(1 - ς(x)) = logsigmoid(-x) keeps a single stable log-sigmoid.
    scale = torch.where(pos, torch.as_tensor(sigma_pos).to(z), torch.as_tensor(sigma_neg).to(z))
    shift = torch.where(pos, torch.as_tensor(mu_pos).to(z), torch.as_tensor(mu_neg).to(z))
    loss = -omega * F.logsigmoid(_binary_terms(z * scale + shift, y))
    return _reduce(loss, y, reduction)


def logit_compensated_bce(
    logits: Tensor,
    targets: Any,
    class_counts: Any,
    num_samples: int,
    sigma_pos: Tensor | float = 1.0,
    mu_pos: Tensor | float = 0.0,
    sigma_neg: Tensor | float = 1.0,
    mu_neg: Tensor | float = 0.0,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Weighted BCE with logit compensation (Guo & Wang, CVPR 2021, Eq. 2).

    .. math::
        L_i = -\frac{1}{K} \sum_k \omega_{ik} \,[\,
              y_{ik} \log \varsigma(u_{ik} \sigma^p_k + \mu^p_k)
              + (1 - y_{ik}) \log (1 - \varsigma(u_{ik} \sigma^n_k + \mu^n_k)) \,],

    .. math::
        \omega_{ik} = y_{ik}\, e^{1 - p_k} + (1 - y_{ik})\, e^{p_k}, \qquad p_k = n_k / N.

    The stateless form: pass the compensation parameters yourself (defaults: identity, which
    gives the :math:`\omega`-weighted BCE). :class:`ltml.losses.LogitCompensatedBCE` holds them
    as learnable parameters and offers a guard against their degenerate direction.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`u`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 = unknown, ignored.
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class (0 is allowed).
    num_samples : int
        :math:`N`, the number of training images (>= every count).
    sigma_pos, mu_pos, sigma_neg, mu_neg : Tensor of shape (C,), or float
        :math:`\sigma^p, \mu^p, \sigma^n, \mu^n`.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` averages over the known elements: with no unknown label this is the paper's
        :math:`\frac{1}{K}\sum_k` followed by the mean over images.

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
    prior = class_prior(class_counts, num_samples)
    num_classes = prior.numel()
    return _logit_compensated_bce(
        logits,
        targets,
        prior,
        _per_class(sigma_pos, "sigma_pos", num_classes),
        _per_class(mu_pos, "mu_pos", num_classes),
        _per_class(sigma_neg, "sigma_neg", num_classes),
        _per_class(mu_neg, "mu_neg", num_classes),
        reduction,
    )


def _db_statistics(
    class_counts: Any, num_samples: int, *, kappa: float, neg_scale: float
) -> tuple[Tensor, Tensor]:
    """``1 / n_k`` and the logit shift ``b_k = -(κ/λ) log(N / n_k - 1)`` (both float32).

    Counts are clamped to ``[1, N - 1]`` first: a class with no positive (or no negative)
    training image would give an infinite weight or shift.
    """
    check_int(num_samples, "num_samples", low=2)
    check_scalar(kappa, "kappa", low=0.0)
    counts = counts_tensor(class_counts, num_samples).clamp(1, num_samples - 1)
    bias = -(kappa / neg_scale) * torch.log(num_samples / counts - 1.0)
    return (1.0 / counts).to(torch.float32), bias.to(torch.float32)


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
) -> Tensor:
    """DB loss for validated class statistics ``1 / n_k`` and ``b_k``."""
    z, y = _prepare(logits, targets, inv_freq.numel())
    pos = y > 0
    inv = inv_freq.to(z)
    # Re-balanced weight: r_ik = (1/n_k) / sum_k' y_ik'/n_k', for positives and negatives alike.
    # An image with no known positive has r = +inf, hence the largest weight alpha + 1. (A sum,
    # not a matmul, which autocast would run in low precision.)
    r = inv / torch.where(pos, inv, 0.0).sum(dim=1, keepdim=True)
    weight = alpha + torch.sigmoid(beta * (r - mu))
    # Negative-tolerant regularisation: shift by b_k, then negatives' logits x λ, weights / λ.
    lam = torch.where(pos, 1.0, neg_scale).to(z)
    s = _binary_terms((z + bias.to(z)) * lam, y)
    loss = scale * weight / lam * _focal_terms(s, gamma)
    return _reduce(loss, y, reduction)


def distribution_balanced_loss(
    logits: Tensor,
    targets: Any,
    class_counts: Any,
    num_samples: int,
    *,
    alpha: float = 0.1,
    beta: float = 10.0,
    mu: float = 0.3,
    kappa: float = 0.05,
    neg_scale: float = 5.0,
    gamma: float = 2.0,
    scale: float = 2.0,
    reduction: Reduction = "mean",
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

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`z`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 = unknown, ignored.
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class.
    num_samples : int
        :math:`N`, the number of training images (>= 2).
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
    inv_freq, bias = _db_statistics(class_counts, num_samples, kappa=kappa, neg_scale=neg_scale)
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
    them but is unbounded.

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
    return _reduce((a - b).square(), None, reduction)
