r"""COMIC's head-tail balance stage (Zhang et al., ICCV 2023): a classifier balanced by two experts.

The third stage of COMIC (Correction, Modification, balanCe): a *head* expert (a classifier
trained on uniform sampling, biased to the frequent classes), a *tail* expert (trained on
re-balanced sampling, biased to the rare ones), and a *balanced* classifier that learns through
each expert's fixed predictions, more through the expert that learns worse at the moment:
:func:`head_tail_balance_loss` and :class:`HeadTailBalancer`. The other stages are in
:mod:`ltml.losses.correction` (RLC) and :mod:`ltml.losses.comic` (MFM), whose loss is the
usual criterion here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_same_shape, check_scalar
from ._core import as_compute_logits, check_finite_values

__all__ = ["HeadTailBalancer", "head_tail_balance_loss"]

Criterion = Callable[[Tensor, Tensor], Tensor]


def _check_balancer(criterion: Any, gamma: Any) -> None:
    if not callable(criterion):
        raise TypeError(
            "`criterion` must be a loss called as criterion(logits, targets), such as "
            f"ltml.MultiFocalModifierLoss, got {type(criterion).__name__}"
        )
    check_scalar(gamma, "gamma", low=0.0)


def _product_logits(expert: Tensor, balanced: Tensor, released_code: bool) -> Tensor:
    """Return the balanced classifier's prediction through a fixed expert, as criterion logits.

    Ours: the logit of the product of the two sigmoid probabilities. The released code: the
    product of the two softmax distributions over the classes, passed to the criterion as if
    it were logits.
    """
    if released_code:
        return F.softmax(expert.detach(), dim=1) * F.softmax(balanced, dim=1)  # over the classes
    log_q = F.logsigmoid(expert.detach()) + F.logsigmoid(balanced)
    # log(1 - q) from log q; q < 1 strictly, so that the logit stays finite
    log_q = log_q.clamp(max=-torch.finfo(log_q.dtype).tiny)
    return log_q - torch.log(-torch.expm1(log_q))


def _balance(
    head: Tensor,
    tail: Tensor,
    balanced: Tensor,
    targets: Any,
    criterion: Criterion,
    gamma: float,
    released_code: bool,
) -> Tensor:
    """Compute the loss of both forms, for validated hyper-parameters."""
    z_b = as_compute_logits(balanced, "balanced_logits")
    z_h = as_compute_logits(head, "head_logits", z_b.shape[1])
    z_t = as_compute_logits(tail, "tail_logits", z_b.shape[1])
    check_same_shape(z_h, z_b, "head_logits", "balanced_logits")
    check_same_shape(z_t, z_b, "tail_logits", "balanced_logits")
    check_finite_values({"head_logits": head, "tail_logits": tail, "balanced_logits": balanced})
    # The experts' learning effect: their own loss, to the power gamma, normalised.
    with torch.set_grad_enabled(released_code and torch.is_grad_enabled()):
        effect_h = criterion(z_h, targets).sum().pow(gamma)
        effect_t = criterion(z_t, targets).sum().pow(gamma)
        total = effect_h + effect_t
        w_h = torch.where(total > 0, effect_h / total, 0.5)
    w_t = 1.0 - w_h
    loss_h = criterion(_product_logits(z_h, z_b, released_code), targets)
    loss_t = criterion(_product_logits(z_t, z_b, released_code), targets)
    return w_h * loss_h + w_t * loss_t


def head_tail_balance_loss(
    head_logits: Tensor,
    tail_logits: Tensor,
    balanced_logits: Tensor,
    targets: Any,
    criterion: Criterion,
    *,
    gamma: float = 2.0,
    released_code: bool = False,
) -> Tensor:
    r"""COMIC's head-tail balance loss (Zhang et al., ICCV 2023): learn through both experts.

    With a criterion :math:`\mathcal{L}` (COMIC: its Multi-Focal Modifier loss), the experts'
    logits :math:`z_H` (head expert, uniform sampling) and :math:`z_T` (tail expert,
    re-balanced sampling) and the balanced classifier's :math:`z_B`, all on the same images:

    .. math::
        w_H = \frac{\mathcal{L}(z_H)^{\gamma}}{\mathcal{L}(z_H)^{\gamma}
              + \mathcal{L}(z_T)^{\gamma}}, \qquad w_T = 1 - w_H,

    .. math::
        \ell = w_H\, \mathcal{L}\bigl(\mathrm{logit}(\varsigma(z_H)\,\varsigma(z_B))\bigr)
             + w_T\, \mathcal{L}\bigl(\mathrm{logit}(\varsigma(z_T)\,\varsigma(z_B))\bigr).

    The balanced classifier learns each class's probability *through* each expert's (their
    product, the expert fixed: :math:`z_H, z_T` pass no gradient), and more through the expert
    whose own loss is larger, the one that currently learns these images worse. A criterion
    with ``reduction="none"`` gives an ``(N, C)`` loss (the weights still use its sum); its
    ``unknown`` policy applies to -1 targets throughout.

    **Transcribed from the released code** (``loss/HeadTailBalancerLoss.py`` of
    wannature/COMIC; the paper describes the stage as a balanced classifier conditioned on the
    head and tail learning effect), with these differences:

    - the code takes the product of the two **softmax** distributions over the classes (a
      single-label habit) and passes that product, a number in (0, 1), to the criterion **as
      logits**; here the product of the sigmoid probabilities, passed as its logit, so the
      criterion sees the probability :math:`\varsigma(z_H)\varsigma(z_B)`.
      ``released_code=True`` gives the code's form;
    - the code's weights pass gradient into the experts' logits (their probabilities in the
      products do not); here neither does, so the loss trains the balanced classifier only
      (``released_code=True``: the code's gradient);
    - the code sets :math:`\gamma = 2` whatever its argument; here ``gamma`` (default 2);
    - the released training loop leaves this loss out (the line is commented out) and trains
      the balanced network with its MFM and RLC losses and an average of the three networks'
      losses instead; the ltml example's ``comic`` row uses the loss as the paper describes.

    Parameters
    ----------
    head_logits, tail_logits, balanced_logits : Tensor, shape (N, C)
        The head expert's, the tail expert's and the balanced classifier's logits on one batch.
    targets : Tensor or ndarray, shape (N, C)
        The batch's labels, as ``criterion`` takes them (-1 = unknown, by its policy).
    criterion : callable
        ``criterion(logits, targets) -> Tensor``, e.g. :class:`ltml.MultiFocalModifierLoss`.
    gamma : float
        Exponent :math:`\gamma \ge 0` of the learning effect (0: equal weights).
    released_code : bool
        The released code's form (softmax products as logits, weights with gradient).

    Returns
    -------
    Tensor
        What ``criterion`` returns: a scalar, or ``(N, C)`` for a criterion without reduction.

    Examples
    --------
    >>> import torch
    >>> from ltml import MultiFocalModifierLoss
    >>> from ltml.functional import head_tail_balance_loss
    >>> criterion = MultiFocalModifierLoss([30, 10, 2])
    >>> head = torch.tensor([[3.0, 1.0, -2.0], [2.0, -1.0, -3.0]])
    >>> tail = torch.tensor([[0.5, 0.2, 1.0], [0.4, 0.1, 0.3]])
    >>> balanced = torch.zeros(2, 3, requires_grad=True)
    >>> targets = torch.tensor([[1, 0, 1], [1, 0, -1]])
    >>> loss = head_tail_balance_loss(head, tail, balanced, targets, criterion)
    >>> round(loss.item(), 4)
    1.1276
    >>> loss.backward()  # only the balanced classifier learns
    """
    _check_balancer(criterion, gamma)
    return _balance(
        head_logits, tail_logits, balanced_logits, targets, criterion, gamma, released_code
    )


class HeadTailBalancer(nn.Module):
    r"""COMIC's head-tail balance stage (Zhang et al., ICCV 2023) as a module.

    :func:`ltml.functional.head_tail_balance_loss` with its criterion held as a sub-module (so
    that its class statistics follow ``.to(device)`` and the ``state_dict``): the balanced
    classifier learns through the head expert's and the tail expert's fixed probabilities,
    weighted towards the expert whose loss is larger. The formula and every difference from
    the released code: the functional's documentation.

    Parameters
    ----------
    criterion : nn.Module or callable
        ``criterion(logits, targets) -> Tensor``; COMIC uses its Multi-Focal Modifier loss
        (:class:`ltml.MultiFocalModifierLoss`).
    gamma : float
        Exponent :math:`\gamma \ge 0` of the learning effect.
    released_code : bool
        The released code's form (softmax products as logits, weights with gradient).

    Examples
    --------
    >>> import torch
    >>> from ltml import MultiFocalModifierLoss
    >>> from ltml.losses import HeadTailBalancer
    >>> balancer = HeadTailBalancer(MultiFocalModifierLoss([30, 10, 2]))
    >>> head = torch.tensor([[3.0, 1.0, -2.0], [2.0, -1.0, -3.0]])
    >>> tail = torch.tensor([[0.5, 0.2, 1.0], [0.4, 0.1, 0.3]])
    >>> targets = torch.tensor([[1, 0, 1], [1, 0, -1]])
    >>> round(balancer(head, tail, torch.zeros(2, 3), targets).item(), 4)
    1.1276
    """

    def __init__(self, criterion: Criterion, gamma: float = 2.0, *, released_code: bool = False):
        super().__init__()
        _check_balancer(criterion, gamma)
        self.criterion = criterion
        self.gamma, self.released_code = gamma, released_code

    def extra_repr(self) -> str:
        """``gamma`` and ``released_code`` (the criterion shows as a sub-module)."""
        return f"gamma={self.gamma!r}, released_code={self.released_code!r}"

    def forward(
        self, head_logits: Tensor, tail_logits: Tensor, balanced_logits: Tensor, targets: Tensor
    ) -> Tensor:
        """Loss of the balanced classifier's ``(N, C)`` logits through the two experts'."""
        return _balance(
            head_logits,
            tail_logits,
            balanced_logits,
            targets,
            self.criterion,
            self.gamma,
            self.released_code,
        )
