"""Deferred re-weighting, DRW (Cao et al., NeurIPS 2019): BCE whose class weights switch on late.

:class:`DeferredReweightedBCE` is :func:`ltml.functional.bce`, unweighted before a given epoch and
weighted from it on. Its sampling twin, :class:`ltml.DeferredClassAwareSampler`, is in
:mod:`ltml.schedules`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._validation import as_class_vector, as_logits, check_int, described
from ._core import LabelLoss, Reduction, Unknown, weight_buffer
from .bce import bce

__all__ = ["DeferredReweightedBCE"]


class DeferredReweightedBCE(LabelLoss):
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

    _repr_fields = ("start_epoch", "epoch")
    weight: Tensor

    def __init__(
        self,
        weight: Any,
        start_epoch: int,
        *,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        self.register_buffer("weight", weight_buffer(as_class_vector(weight, "weight")))
        self.start_epoch = check_int(start_epoch, "start_epoch", low=0)
        self.epoch = 0

    @property
    def active(self) -> bool:
        """Whether the current epoch re-weights (``epoch >= start_epoch``)."""
        return self.epoch >= self.start_epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the loss re-weights from ``start_epoch`` on."""
        self.epoch = check_int(epoch, "epoch", low=0)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets, weighted if :attr:`active`."""
        # The width is checked in every phase: before start_epoch no weight would catch it.
        as_logits(logits, "logits", self.weight.numel())
        weight = self.weight if self.active else None
        return bce(logits, targets, weight, reduction=self.reduction, unknown=self.unknown)

    def get_extra_state(self) -> dict[str, int]:
        """Return the epoch, saved with the module's ``state_dict``."""
        return {"epoch": self.epoch}

    def set_extra_state(self, state: dict[str, int]) -> None:
        """Restore the epoch from a ``state_dict``."""
        if not isinstance(state, dict) or "epoch" not in state:
            raise ValueError(
                "`state_dict` of DeferredReweightedBCE must hold its extra state {'epoch': int} "
                f"(saved by its own state_dict()), got {described(state)}"
            )
        self.set_epoch(state["epoch"])
