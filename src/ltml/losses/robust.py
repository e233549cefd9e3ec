r"""Losses robust to missing positives: Hill and SPLC (Zhang et al., 2021).

Zhang, Cheng, Huang, Xu, Yu & Zhao, "Simple and Robust Loss Design for Multi-Label Learning
with Missing Labels" (arXiv 2112.07368, 2021; code xinyu1205/robust-loss-mlml). Both are made
for labels where a missing positive reads as a negative (the "assume negative" setting,
``unknown="negative"`` for -1 labels), and both keep a *focal margin* loss on the positives,
:math:`-(1 - p_m)^{\gamma} \log p_m` with :math:`p_m = \varsigma(z - m)`:

- :func:`hill_loss` / :class:`HillLoss`: the negatives' loss is the Hill-shaped
  :math:`(\lambda - p)\,p^2`, which gives little gradient to a confident negative (a likely
  missing positive);
- :func:`splc_loss` / :class:`SPLCLoss`: self-paced loss correction, a negative whose
  probability passes :math:`\tau` is trained as a positive from a given epoch on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_int, check_reduction, check_scalar
from ._core import LabelLoss, Reduction, Unknown, prepare, reduce

__all__ = ["HillLoss", "SPLCLoss", "hill_loss", "splc_loss"]


def _focus(q: Tensor, gamma: float) -> Tensor:
    """``q ** gamma`` for ``q`` in [0, 1], with no infinite gradient where ``q = 0``."""
    if gamma == 0:
        return torch.ones_like(q)
    return torch.where(q > 0, q, q.detach()).pow(gamma)


def _check_hill(lamb: Any, margin: Any, gamma: Any) -> None:
    check_scalar(lamb, "lamb", low=0.0)
    check_scalar(margin, "margin", low=0.0)
    check_scalar(gamma, "gamma", low=0.0)


def _check_splc(tau: Any, margin: Any, gamma: Any) -> None:
    check_scalar(tau, "tau", low=0.0, high=1.0, low_open=True, high_open=True)
    check_scalar(margin, "margin", low=0.0)
    check_scalar(gamma, "gamma", low=0.0)


def hill_loss(
    logits: Tensor,
    targets: Any,
    *,
    lamb: float = 1.5,
    margin: float = 1.0,
    gamma: float = 2.0,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""Hill loss (Zhang et al., 2021): focal margin positives, Hill-shaped negatives.

    With :math:`p = \varsigma(z)` and :math:`p_m = \varsigma(z - m)`:

    .. math::
        \ell = y\,\bigl[-(1 - p_m)^{\gamma} \log p_m\bigr] + (1 - y)\,(\lambda - p)\,p^2 .

    The negatives' term rises with :math:`p` up to :math:`p = 2\lambda / 3` (all of [0, 1] for
    :math:`\lambda \ge 1.5`) but its gradient falls off again towards :math:`p = 1`: a negative
    the model is sure of, likely a missing positive, is pushed down less than by BCE. Defaults
    are the paper's and the code's (:math:`\lambda = 1.5`, :math:`m = 1`, :math:`\gamma = 2`).

    **Against the authors' code** (``Hill`` in ``src/loss_functions/losses.py``): the same
    values, with :math:`\log p_m` computed as ``logsigmoid`` (finite where their
    ``log(sigmoid(.))`` underflows to :math:`-\infty`); their default reduction is the
    **sum** over the batch and classes (``reduction="sum"``), here the mean over the known
    elements. Their focusing weight passes its gradient, as here.

    **Soft targets** :math:`y \in [0, 1]` are read as the authors' code reads them,
    :math:`\ell = (y (1 - p_m) + 1 - y)^{\gamma}\,[-y \log p_m + (1 - y)(\lambda - p) p^2]`,
    which for 0 / 1 targets is the formula above.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`z`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels or soft targets in [0, 1]; -1 = unknown (see ``unknown``).
    lamb : float
        :math:`\lambda \ge 0` of the negatives' term.
    margin : float
        :math:`m \ge 0`, subtracted from the positives' logits.
    gamma : float
        Focusing exponent :math:`\gamma \ge 0` of the positives.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements; ``"sum"`` (the authors' code); ``"none"``.
    unknown : {"ignore", "negative"}
        Policy for unknown (-1) targets: left out (default) or read as negatives, the setting
        Hill is made for (missing positives among the negatives).

    Returns
    -------
    Tensor
        Scalar, or ``(N, C)`` for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import hill_loss
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [-1, 1]])
    >>> round(hill_loss(logits, targets).item(), 4)
    0.0378
    >>> round(hill_loss(logits, targets, unknown="negative", reduction="sum").item(), 4)
    0.4535
    """
    check_reduction(reduction)
    _check_hill(lamb, margin, gamma)
    z, t, mask = prepare(logits, targets, None, unknown)
    shifted = z - margin
    p = torch.sigmoid(z)
    focus = _focus(t * torch.sigmoid(-shifted) + (1.0 - t), gamma)
    loss = focus * (-t * F.logsigmoid(shifted) + (1.0 - t) * (lamb - p) * p * p)
    return reduce(loss, mask, reduction)


class HillLoss(LabelLoss):
    r"""Hill loss (Zhang et al., 2021): :func:`ltml.functional.hill_loss` as a module.

    :math:`y\,[-(1 - p_m)^{\gamma} \log p_m] + (1 - y)(\lambda - p) p^2` with
    :math:`p = \varsigma(z)`, :math:`p_m = \varsigma(z - m)`: a focal margin loss on the
    positives and a negatives' loss whose gradient fades for confident negatives (likely
    missing positives). Use ``unknown="negative"`` for -1 labels to be the negatives Hill is
    robust to. The authors' code sums the loss (``reduction="sum"``); the formula, soft
    targets and the other differences: the functional's documentation.

    Parameters
    ----------
    lamb, margin, gamma : float
        :math:`\lambda`, :math:`m`, :math:`\gamma` (the paper's 1.5, 1, 2).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"`` (the authors' code), or ``"none"``.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or read as negatives.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import HillLoss
    >>> logits, targets = torch.tensor([[2.0, -1.0], [0.5, 3.0]]), torch.tensor([[1, 0], [-1, 1]])
    >>> round(HillLoss(unknown="negative")(logits, targets).item(), 4)
    0.1134
    """

    _repr_fields = ("lamb", "margin", "gamma")

    def __init__(
        self,
        lamb: float = 1.5,
        margin: float = 1.0,
        gamma: float = 2.0,
        *,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        _check_hill(lamb, margin, gamma)
        self.lamb, self.margin, self.gamma = lamb, margin, gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return hill_loss(
            logits,
            targets,
            lamb=self.lamb,
            margin=self.margin,
            gamma=self.gamma,
            reduction=self.reduction,
            unknown=self.unknown,
        )


def splc_loss(
    logits: Tensor,
    targets: Any,
    *,
    tau: float = 0.6,
    margin: float = 1.0,
    gamma: float = 2.0,
    correct: bool = True,
    reduction: Reduction = "mean",
    unknown: Unknown = "ignore",
) -> Tensor:
    r"""SPLC, self-paced loss correction (Zhang et al., 2021), one step.

    The known positives' logits are shifted by the margin, :math:`z' = z - m\,y`; with
    ``correct``, every negative whose probability :math:`\varsigma(z')` exceeds :math:`\tau`
    becomes a positive, :math:`\hat y = 1`; then, with :math:`p' = \varsigma(z')`,

    .. math::
        \ell = \hat y\,\bigl[-(1 - p')^{\gamma} \log p'\bigr]
               + (1 - \hat y)\,\bigl[-p'^{\gamma} \log (1 - p')\bigr],

    the paper's "focal margin" loss (a corrected negative is trained as a positive without the
    margin, as in the paper's :math:`\mathcal{L}^+(p)`). The correction is re-decided at every
    step from the current logits (self-paced) and passes no gradient through its decision.
    :class:`ltml.losses.SPLCLoss` holds the epoch from which it runs (the authors: after the
    first epoch, whose predictions recall few missing labels). Defaults are the paper's and the
    code's (:math:`\tau = 0.6`, :math:`m = 1`, :math:`\gamma = 2`).

    Which entries can be corrected: those read as negatives, the known 0 labels and, with
    ``unknown="negative"``, the -1 ones (the paper's setting, where a missing label is a 0).
    With ``unknown="ignore"`` the -1 entries stay out of the loss, corrected or not.

    **Against the authors' code** (``SPLC`` in ``src/loss_functions/losses.py``): the same
    values; their default reduction is the **sum** (``reduction="sum"``), here the mean over
    the known elements; their focusing weight passes its gradient, as here. Targets must be
    0 / 1 (the correction needs to know the negatives): soft targets raise a ``ValueError``.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Raw scores :math:`z`.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 = unknown (see ``unknown``).
    tau : float
        Probability threshold :math:`\tau \in (0, 1)` of the correction.
    margin : float
        :math:`m \ge 0`, subtracted from the known positives' logits.
    gamma : float
        Focusing exponent :math:`\gamma \ge 0`, of positives and negatives.
    correct : bool
        Apply the correction (False: the focal margin loss alone).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements; ``"sum"`` (the authors' code); ``"none"``.
    unknown : {"ignore", "negative"}
        Policy for unknown (-1) targets: left out (default) or read as negatives.

    Returns
    -------
    Tensor
        Scalar, or ``(N, C)`` for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import splc_loss
    >>> logits = torch.tensor([[2.0, 1.0], [0.5, 3.0]])
    >>> targets = torch.tensor([[1, 0], [-1, 1]])
    >>> round(splc_loss(logits, targets, correct=False).item(), 4)  # focal margin alone
    0.2421
    >>> round(splc_loss(logits, targets).item(), 4)  # sigmoid(1.0) > 0.6: [0, 1] -> positive
    0.0157
    """
    check_reduction(reduction)
    _check_splc(tau, margin, gamma)
    z, t, mask = prepare(logits, targets, None, unknown, soft=False, loss="SPLC")
    shifted = z - margin * t
    if correct:
        with torch.no_grad():
            t = torch.where(torch.sigmoid(shifted) > tau, torch.ones_like(t), t)
    q = t * torch.sigmoid(-shifted) + (1.0 - t) * torch.sigmoid(shifted)  # 1 - p_t
    log_p = t * F.logsigmoid(shifted) + (1.0 - t) * F.logsigmoid(-shifted)
    return reduce(-_focus(q, gamma) * log_p, mask, reduction)


class SPLCLoss(LabelLoss):
    r"""SPLC, self-paced loss correction (Zhang et al., 2021), from a given epoch on.

    :func:`ltml.functional.splc_loss` as a module: a focal margin loss whose negatives are
    trained as positives where the model's probability exceeds :math:`\tau`, the correction
    running from ``start_epoch`` on (the authors' ``change_epoch``, 1: after one epoch of the
    focal margin loss alone). Call :meth:`set_epoch` at each epoch's start. Use
    ``unknown="negative"`` for -1 labels to be candidates of the correction (the paper's
    setting). The authors' code sums the loss (``reduction="sum"``); the formula and the other
    differences: the functional's documentation. Targets must be 0 / 1 (-1 = unknown).

    Parameters
    ----------
    tau, margin, gamma : float
        :math:`\tau`, :math:`m`, :math:`\gamma` (the paper's 0.6, 1, 2).
    start_epoch : int
        First epoch (as given to :meth:`set_epoch`) with corrections.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"`` (the authors' code), or ``"none"``.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or read as negatives.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import SPLCLoss
    >>> criterion = SPLCLoss(unknown="negative")
    >>> logits, targets = torch.tensor([[2.0, 1.0], [0.5, 3.0]]), torch.tensor([[1, 0], [-1, 1]])
    >>> round(criterion(logits, targets).item(), 4)  # epoch 0: no correction yet
    0.2759
    >>> criterion.set_epoch(1)
    >>> round(criterion(logits, targets).item(), 4)
    0.0287
    """

    _repr_fields = ("tau", "margin", "gamma", "start_epoch")

    def __init__(
        self,
        tau: float = 0.6,
        margin: float = 1.0,
        gamma: float = 2.0,
        *,
        start_epoch: int = 1,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        _check_splc(tau, margin, gamma)
        self.tau, self.margin, self.gamma = tau, margin, gamma
        self.start_epoch: int = check_int(start_epoch, "start_epoch", low=0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: corrections run from ``start_epoch`` on."""
        self.epoch = check_int(epoch, "epoch", low=0)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return splc_loss(
            logits,
            targets,
            tau=self.tau,
            margin=self.margin,
            gamma=self.gamma,
            correct=self.epoch >= self.start_epoch,
            reduction=self.reduction,
            unknown=self.unknown,
        )
