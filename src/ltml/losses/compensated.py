"""The logit-compensated BCE of Guo & Wang (CVPR 2021, Eq. 2): the classification loss of LTML.

:func:`logit_compensated_bce` takes the compensation as arguments; :class:`LogitCompensatedBCE`
learns it, and offers a guard against its degenerate direction.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._deprecation import renamed_keyword
from .._validation import check_bool, check_choice, check_reduction, check_scalar, counts_tensor
from ..stats import class_weights
from ._core import FromLabels, LabelLoss, Reduction, Unknown, per_class, prepare, reduce

__all__ = ["LogitCompensatedBCE", "logit_compensated_bce"]


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
    """Eq. 2 of Guo & Wang for validated ``(2, C)`` weights ``omega`` (positives, negatives).

    The loss of both forms: the module holds ``omega`` from counts checked once, where the
    functional's check of the counts, a host read, would stall an accelerator at every step.
    """
    z, t, mask = prepare(logits, targets, omega.shape[1], unknown)
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
    return reduce(loss, mask, reduction)


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
        per_class(sigma_pos, "sigma_pos", num_classes),
        per_class(mu_pos, "mu_pos", num_classes),
        per_class(sigma_neg, "sigma_neg", num_classes),
        per_class(mu_neg, "mu_neg", num_classes),
        reduction,
        unknown,
    )


class LogitCompensatedBCE(FromLabels, LabelLoss):
    r"""Weighted BCE with learnable logit compensation (Guo & Wang, CVPR 2021, Eq. 2).

    .. math::
        L_i = -\frac{1}{K} \sum_k \omega_{ik} \,[\,
              y_{ik} \log \varsigma(u_{ik} \sigma^p_k + \mu^p_k)
              + (1 - y_{ik}) \log (1 - \varsigma(u_{ik} \sigma^n_k + \mu^n_k)) \,],

    with :math:`\omega_{ik} = y_{ik} e^{1 - p_k} + (1 - y_{ik}) e^{p_k}` and
    :math:`p_k = n_k / N` (``ltml.class_weights(class_counts, num_images, method="omega")``).
    The per-class :math:`\sigma^p, \mu^p, \sigma^n, \mu^n` start at the identity
    (:math:`\sigma = 1, \mu = 0`), where the loss is the :math:`\omega`-weighted BCE. They act
    inside the loss only: predict with the raw logits.

    .. warning::
        **The compensation parameters are this module's own** ``nn.Parameter`` objects: give them to
        the optimizer, e.g. ``SGD([*model.parameters(), *criterion.parameters()], ...)``,
        otherwise they never move and the loss is a fixed weighted BCE. (With ``learnable=False``
        they are buffers and the loss is that weighted BCE by design.)

    Left free, the compensation can lower the loss without better logits (:math:`\mu^p` up,
    :math:`\mu^n` down, :math:`\sigma^p` through 0). ``guard="tied"`` removes that direction:
    one per-class map :math:`\sigma_k u + \mu_k` for positives and negatives alike, with
    :math:`\sigma_k = \exp(c \tanh((s_k - 1) / c))` and :math:`c = \log m`, :math:`m` =
    ``max_scale``, kept in :math:`(1/m, m)`. The paper's free form stays the default; the docs'
    concepts page ("The compensation's degenerate direction") explains both.

    The ``state_dict`` has the same keys whatever ``learnable`` and ``guard``: ``weight`` and
    ``sigma_pos``, ``mu_pos``, ``sigma_neg``, ``mu_neg``. With the guard, ``sigma_pos`` holds
    :math:`s` and ``mu_pos`` :math:`\mu`, and ``sigma_neg`` / ``mu_neg`` are the same tensors;
    at the identity both forms store the same values.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class (0 allowed: :math:`p_k = 0`).
    num_images : int
        :math:`N`, the number of training images (>= every count). Formerly ``num_samples``
        (deprecated).
    learnable : bool
        Learn the compensation (default). False: fixed at the identity (buffers).
    guard : {None, "tied"}
        None (default): the paper's four free parameters per class. ``"tied"``: the guarded
        form above.
    max_scale : float
        Bound of the tied scale (> 1); ignored without a guard.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` averages over the known elements, which with no unknown label is the paper's
        :math:`\frac{1}{K}\sum_k` followed by the mean over images; ``"sum"``; ``"none"`` the
        ``(N, C)`` loss, 0 at unknown targets.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (2, C)
        :math:`\omega`: row 0 weighs positives, row 1 negatives (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import LogitCompensatedBCE
    >>> labels = torch.tensor([[1, 0], [1, 1], [1, 0], [0, 0]])  # training labels
    >>> criterion = LogitCompensatedBCE.from_labels(labels)
    >>> [name for name, _ in criterion.named_parameters()]
    ['sigma_pos', 'mu_pos', 'sigma_neg', 'mu_neg']
    >>> logits = torch.tensor([[1.0, -2.0], [0.5, 0.3]], requires_grad=True)
    >>> loss = criterion(logits, torch.tensor([[1, 0], [1, -1]]))
    >>> loss.backward()
    >>> round(loss.item(), 4), criterion.mu_pos.grad.shape
    (0.3913, torch.Size([2]))
    """

    _needs_num_images = True
    _repr_fields = ("guard", "max_scale")
    weight: Tensor
    sigma_pos: Tensor
    mu_pos: Tensor
    sigma_neg: Tensor
    mu_neg: Tensor

    @renamed_keyword("num_samples", "num_images")
    def __init__(
        self,
        class_counts: Any,
        num_images: int,
        *,
        learnable: bool = True,
        guard: Literal["tied"] | None = None,
        max_scale: float = 2.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_bool(learnable, "learnable")
        check_choice(guard, "guard", (None, "tied"))
        check_scalar(max_scale, "max_scale", low=1.0, low_open=True)
        self.guard = guard
        self.max_scale = max_scale
        counts = counts_tensor(class_counts, num_images)
        self.register_buffer("weight", class_weights(counts, num_images, method="omega"))
        num_classes = self.weight.shape[1]
        initial = {"sigma_pos": 1.0, "mu_pos": 0.0, "sigma_neg": 1.0, "mu_neg": 0.0}
        for name, value in initial.items():
            if guard == "tied" and name.endswith("_neg"):  # tied: the positives' tensors
                tensor = getattr(self, name.replace("_neg", "_pos"))
            else:
                tensor = torch.full((num_classes,), value)
                tensor = nn.Parameter(tensor) if learnable else tensor
            if learnable:
                self.register_parameter(name, tensor)
            else:
                self.register_buffer(name, tensor)

    def compensation(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Return the per-class :math:`(\sigma^p, \mu^p, \sigma^n, \mu^n)` in use, each (C,)."""
        if self.guard is None:
            return self.sigma_pos, self.mu_pos, self.sigma_neg, self.mu_neg
        c = math.log(self.max_scale)
        sigma = torch.exp(c * torch.tanh((self.sigma_pos - 1.0) / c))
        return sigma, self.mu_pos, sigma, self.mu_pos

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return _logit_compensated_bce(
            logits, targets, self.weight, *self.compensation(), self.reduction, self.unknown
        )
