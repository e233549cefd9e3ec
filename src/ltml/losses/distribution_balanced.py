"""The Distribution-Balanced loss (Wu et al., ECCV 2020), focal form ("DB-Focal").

:func:`distribution_balanced_loss` computes its class statistics from the counts at each call;
:class:`DistributionBalancedLoss` computes them once, with :func:`db_statistics`, and holds them
as buffers.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .._deprecation import renamed_keyword
from .._validation import check_choice, check_int, check_reduction, check_scalar, counts_tensor
from ..stats import class_weights
from ._core import FromLabels, LabelLoss, Reduction, Unknown, by_label, modulated, prepare, reduce

__all__ = ["DistributionBalancedLoss", "db_statistics", "distribution_balanced_loss"]

_PRESETS: dict[str, dict[str, float]] = {
    "voc": {"mu": 0.3, "neg_scale": 5.0},
    "coco": {"mu": 0.2, "neg_scale": 2.0},
}


def _check_shift(kappa: Any, neg_scale: Any) -> None:
    """Check the hyper-parameters of the prior-based logit shift."""
    check_scalar(kappa, "kappa", low=0.0)
    check_scalar(neg_scale, "neg_scale", low=0.0, low_open=True)


def _check_hyperparameters(
    alpha: Any, beta: Any, mu: Any, kappa: Any, neg_scale: Any, gamma: Any, scale: Any
) -> None:
    """Check the DB loss's hyper-parameters: re-balanced weight, shift and tolerance, focus."""
    check_scalar(alpha, "alpha", low=0.0)
    check_scalar(beta, "beta", low=0.0)
    check_scalar(mu, "mu")
    _check_shift(kappa, neg_scale)
    check_scalar(gamma, "gamma", low=0.0)
    check_scalar(scale, "scale", low=0.0, low_open=True)


def db_statistics(
    class_counts: Any, num_images: int, *, kappa: float = 0.05, neg_scale: float = 5.0
) -> tuple[Tensor, Tensor]:
    r"""Compute the Distribution-Balanced loss's class statistics: inverse frequency, logit shift.

    .. math::
        f_k = \frac{1 / n_k}{\frac{1}{C} \sum_{k'} 1 / n_{k'}}, \qquad
        b_k = -\frac{\kappa}{\lambda} \log\left(\frac{N}{n_k} - 1\right),

    the inverse class frequency of the re-balanced weight (which only uses ratios of it; here
    :func:`ltml.class_weights`'s, normalised to mean 1) and the prior-based shift of the
    negative-tolerant regularisation (Wu et al., ECCV 2020, Eq. 7).
    :class:`ltml.losses.DistributionBalancedLoss` holds them as buffers;
    :func:`ltml.functional.distribution_balanced_loss` computes them at each call.

    Counts are clamped to ``[1, N - 1]`` first: a class with no positive (or no negative)
    training image would give an infinite weight or shift.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class.
    num_images : int
        :math:`N`, the number of training images (>= 2, and >= every count).
    kappa : float
        Scale :math:`\kappa \ge 0` of the shift.
    neg_scale : float
        :math:`\lambda > 0`, the negative-tolerance factor.

    Returns
    -------
    inv_freq : Tensor, shape (C,), float32
        :math:`f_k`.
    bias : Tensor, shape (C,), float32
        :math:`b_k`.

    Examples
    --------
    >>> from ltml.losses import db_statistics
    >>> inv_freq, bias = db_statistics([90, 10], 100)
    >>> inv_freq
    tensor([0.2000, 1.8000])
    >>> bias
    tensor([ 0.0220, -0.0220])
    """
    check_int(num_images, "num_images", low=2)
    _check_shift(kappa, neg_scale)
    counts = counts_tensor(class_counts, num_images).clamp(1, num_images - 1)
    bias = -(kappa / neg_scale) * torch.log(num_images / counts - 1.0)
    return class_weights(counts, method="inverse"), bias.to(torch.float32)


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
    """DB loss for validated class statistics (:func:`db_statistics`).

    The loss of both forms: the module holds the statistics of counts checked once, where the
    functional's check of the counts, a host read, would stall an accelerator at every step.
    """
    z, t, mask = prepare(
        logits,
        targets,
        inv_freq.numel(),
        unknown,
        soft=False,
        loss="the Distribution-Balanced loss",
    )
    inv = inv_freq.to(z)
    # Re-balanced weight: r_ik = (1/n_k) / sum_k' y_ik'/n_k', for positives and negatives alike.
    # An image with no known positive has r = +inf, hence the largest weight alpha + 1; beta = 0
    # makes the weight alpha + 1/2 everywhere, there too (not 0 * inf = NaN). (A sum, not a
    # matmul, which autocast would run in low precision.)
    r = inv / (t * inv).sum(dim=1, keepdim=True)
    weight = alpha + (torch.sigmoid(beta * (r - mu)) if beta > 0 else 0.5)
    # Negative-tolerant regularisation: shift by b_k, then negatives' logits x λ, weights / λ.
    lam = by_label(t, 1.0, neg_scale)
    x = (z + bias.to(z)) * lam
    loss = F.binary_cross_entropy_with_logits(x, t, weight=weight * (scale / lam), reduction="none")
    return reduce(modulated(loss, x, t, gamma), mask, reduction)


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

    The class statistics (:math:`1 / n_k` and :math:`b_k`) are those of :func:`db_statistics`,
    whose counts are clamped to ``[1, N - 1]``: a class with 0 (or N) training positives would
    have an infinite weight (or shift). Unknown (-1) targets are ignored, also in
    :math:`r_{ik}`. The logits are not modified (the authors' code adds :math:`b` to them in
    place).

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
        As in :func:`~ltml.functional.bce`.
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
    _check_hyperparameters(alpha, beta, mu, kappa, neg_scale, gamma, scale)
    inv_freq, bias = db_statistics(class_counts, num_images, kappa=kappa, neg_scale=neg_scale)
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


class DistributionBalancedLoss(FromLabels, LabelLoss):
    r"""Distribution-Balanced loss, focal form (Wu et al., ECCV 2020): "DB-Focal".

    Re-balanced weights :math:`w_{ik} = \alpha + \varsigma(\beta (r_{ik} - \mu))` and
    negative-tolerant regularisation (logit shift :math:`b_k = -\frac{\kappa}{\lambda}
    \log(N / n_k - 1)`, negatives' logits :math:`\times\lambda` and weights :math:`/\lambda`)
    with a focal term; see :func:`ltml.functional.distribution_balanced_loss` for the formula.

    ``preset`` sets the dataset-specific values of the authors' configurations:
    ``"voc"`` (VOC-LT: :math:`\mu` = 0.3, :math:`\lambda` = 5) or ``"coco"`` (COCO-LT:
    :math:`\mu` = 0.2, :math:`\lambda` = 2); an explicit ``mu`` or ``neg_scale`` overrides it.
    Shared values: :math:`\alpha` = 0.1, :math:`\beta` = 10, :math:`\kappa` = 0.05,
    :math:`\gamma` = 2, loss scale 2. Counts are clamped to ``[1, N - 1]`` (never an infinite
    weight or shift). Targets must be 0 / 1 (-1 = unknown): the re-balanced weights are defined
    by the image's positive labels, so soft targets raise a ``ValueError``.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    num_images : int
        Number of training images. Formerly ``num_samples`` (deprecated).
    preset : {"voc", "coco"}
        Defaults for ``mu`` and ``neg_scale``.
    alpha, beta, mu, kappa, neg_scale, gamma, scale : float
        As in :func:`ltml.functional.distribution_balanced_loss`.
    reduction : {"mean", "sum", "none"}
        As in :class:`~ltml.losses.BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    inv_freq, bias : Tensor, shape (C,)
        The class statistics, :func:`db_statistics` of the counts (buffers).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import DistributionBalancedLoss
    >>> labels = torch.tensor([[1, 0], [1, 1], [1, 0], [0, 0]])
    >>> criterion = DistributionBalancedLoss.from_labels(labels, preset="coco")
    >>> criterion.neg_scale, criterion.mu
    (2.0, 0.2)
    >>> round(criterion(torch.zeros(4, 2), labels).item(), 4)
    0.2616
    """

    _needs_num_images = True
    _repr_fields = ("alpha", "beta", "mu", "kappa", "neg_scale", "gamma", "scale")
    inv_freq: Tensor
    bias: Tensor

    @renamed_keyword("num_samples", "num_images")
    def __init__(
        self,
        class_counts: Any,
        num_images: int,
        *,
        preset: Literal["voc", "coco"] = "voc",
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float | None = None,
        kappa: float = 0.05,
        neg_scale: float | None = None,
        gamma: float = 2.0,
        scale: float = 2.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_choice(preset, "preset", tuple(_PRESETS))
        self.alpha, self.beta, self.kappa = alpha, beta, kappa
        self.mu = _PRESETS[preset]["mu"] if mu is None else mu
        self.neg_scale = _PRESETS[preset]["neg_scale"] if neg_scale is None else neg_scale
        self.gamma, self.scale = gamma, scale
        _check_hyperparameters(alpha, beta, self.mu, kappa, self.neg_scale, gamma, scale)
        inv_freq, bias = db_statistics(
            class_counts, num_images, kappa=kappa, neg_scale=self.neg_scale
        )
        self.register_buffer("inv_freq", inv_freq)
        self.register_buffer("bias", bias)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return _distribution_balanced_loss(
            logits,
            targets,
            self.inv_freq,
            self.bias,
            alpha=self.alpha,
            beta=self.beta,
            mu=self.mu,
            neg_scale=self.neg_scale,
            gamma=self.gamma,
            scale=self.scale,
            reduction=self.reduction,
            unknown=self.unknown,
        )
