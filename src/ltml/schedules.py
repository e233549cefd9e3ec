"""Deferred re-balancing: a loss and a sampler that switch to re-balancing at a given epoch.

Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss" (NeurIPS
2019) train with plain weights first and switch class re-weighting on late (*deferred
re-weighting*, DRW); the Bag of Tricks (Zhang et al., AAAI 2021) does the same with the sampler
(*deferred re-sampling*, DRS). The representation is learnt on the true distribution, the
re-balancing then adjusts the decision boundaries.

- :class:`DeferredReweightedBCE`: BCE with uniform class weights before ``start_epoch``, the
  given per-class weights from it on.
- :class:`DeferredClassAwareSampler`: the uniform order (a shuffle of the images) before
  ``start_epoch``, :class:`~ltml.ClassAwareSampler`'s draws from it on.

Both switch on ``set_epoch(epoch)``, called at the start of each epoch as for
:class:`~torch.utils.data.DistributedSampler`; what they do is a function of the epoch alone, so
a run resumed at any epoch behaves as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._validation import (
    as_class_vector,
    check_finite,
    check_int,
    check_reduction,
    check_unknown,
)
from .functional.losses import Reduction, Unknown, bce
from .samplers.deferred import DeferredClassAwareSampler

__all__ = ["DeferredClassAwareSampler", "DeferredReweightedBCE"]


class DeferredReweightedBCE(nn.Module):
    r"""Deferred re-weighting (DRW): BCE whose per-class weights switch on at ``start_epoch``.

    Epochs ``0 .. start_epoch - 1`` use the plain BCE (every weight 1); from ``start_epoch`` on,
    every element of class :math:`k` (positive or negative) is weighted by ``weight[k]``, as in
    :func:`ltml.functional.bce`. Cao et al. (NeurIPS 2019) switch at 160 of 200 epochs (0.8 of
    training) with class-balanced weights :math:`\propto (1 - \beta) / (1 - \beta^{n_k})`,
    :math:`\beta` = 0.9999, normalised to sum to :math:`C`; e.g.
    ``ltml.ClassBalancedFocalLoss(counts, beta=0.9999).weight`` holds those. Unknown (-1)
    targets are ignored; soft targets in [0, 1] (mixup) are accepted, as by :class:`ltml.BCE`.

    Call :meth:`set_epoch` at the start of every epoch. The epoch is saved in the
    ``state_dict`` (extra state), so a checkpoint restores the phase too.

    Parameters
    ----------
    weight : Tensor or sequence, shape (C,)
        Per-class weights used from ``start_epoch`` on (finite, non-negative).
    start_epoch : int
        First epoch of re-weighting (0 = from the start).
    reduction : {"mean", "sum", "none"}
        As in :class:`ltml.BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets ignored (default) or read as negatives, as in :class:`ltml.BCE`.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The deferred weights (a buffer).
    epoch : int
        The epoch of the last :meth:`set_epoch` (0 before any call).

    Examples
    --------
    >>> import torch
    >>> from ltml import DeferredReweightedBCE
    >>> loss = DeferredReweightedBCE(torch.tensor([0.5, 1.5]), start_epoch=2)
    >>> logits, targets = torch.tensor([[2.0, -1.0]]), torch.tensor([[1, 1]])
    >>> loss.set_epoch(1)
    >>> round(loss(logits, targets).item(), 4)  # plain BCE
    0.7201
    >>> loss.set_epoch(2)
    >>> round(loss(logits, targets).item(), 4)  # weighted
    1.0167
    """

    weight: Tensor

    def __init__(
        self,
        weight: Any,
        start_epoch: int,
        *,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__()
        check_unknown(unknown)
        self.unknown: Unknown = unknown
        w = as_class_vector(weight, "weight")
        check_finite(w, "weight")
        if bool((w < 0).any()):
            raise ValueError(f"`weight` must be non-negative, got {w.min().item()}")
        check_int(start_epoch, "start_epoch", low=0)
        check_reduction(reduction)
        self.register_buffer("weight", w.to(torch.float32))
        self.start_epoch = int(start_epoch)
        self.reduction: Reduction = reduction
        self.epoch = 0

    @property
    def active(self) -> bool:
        """Whether the current epoch re-weights (``epoch >= start_epoch``)."""
        return self.epoch >= self.start_epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the loss re-weights from ``start_epoch`` on."""
        check_int(epoch, "epoch", low=0)
        self.epoch = int(epoch)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets, weighted if :attr:`active`."""
        weight = self.weight if self.active else None
        return bce(logits, targets, weight, reduction=self.reduction, unknown=self.unknown)

    def get_extra_state(self) -> dict[str, int]:
        """Return the epoch, saved with the module's ``state_dict``."""
        return {"epoch": self.epoch}

    def set_extra_state(self, state: dict[str, int]) -> None:
        """Restore the epoch from a ``state_dict``."""
        self.set_epoch(state["epoch"])

    def extra_repr(self) -> str:
        """Summary shown by ``print(loss)``."""
        return (
            f"start_epoch={self.start_epoch}, epoch={self.epoch}, "
            f"reduction={self.reduction!r}, unknown={self.unknown!r}"
        )
