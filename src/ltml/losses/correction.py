"""COMIC's Reflective Label Corrector (Zhang et al., ICCV 2023): pseudo-positives, then a loss.

:func:`reflective_label_correction` turns the confident candidates of a batch into
pseudo-positives; :class:`ReflectiveLabelCorrector` holds the class-aware threshold, corrects each
batch and computes the Multi-Focal Modifier loss (:mod:`ltml.losses.comic`) on the corrected
targets.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from .._validation import check_choice, check_int, check_scalar, counts_tensor
from ._core import (
    LabelLoss,
    Reduction,
    Unknown,
    check_asymmetric,
    check_pair,
    comic_class_weights,
    per_class,
)
from .comic import multi_focal_modifier_loss

__all__ = ["CorrectorOutput", "ReflectiveLabelCorrector", "reflective_label_correction"]

_CANDIDATES = ("unknown", "unobserved")


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
    check_choice(candidates, "candidates", _CANDIDATES)
    z, y = check_pair(logits, targets, soft=False, loss="the Reflective Label Corrector")
    t = torch.as_tensor(
        per_class(threshold, "threshold", z.shape[1]), dtype=z.dtype, device=z.device
    )
    with torch.no_grad():
        candidate = y < 0 if candidates == "unknown" else y <= 0
        if candidates == "unobserved":
            y = y.clamp(min=0)  # COMIC's convention: a missing label reads as 0
        return torch.where(candidate & (torch.sigmoid(z) > t), torch.ones_like(y), y)


class CorrectorOutput(NamedTuple):
    """What :class:`ReflectiveLabelCorrector` returns: its loss and the corrected targets."""

    loss: Tensor
    targets: Tensor


class ReflectiveLabelCorrector(LabelLoss):
    r"""COMIC's Reflective Label Corrector (Zhang et al., ICCV 2023): pseudo-positives + loss.

    Each call corrects the batch's targets, then computes a loss on the corrected ones:

    1. **Correction.** A candidate entry (an unknown label, or with
       ``candidates="unobserved"`` any entry not known positive) becomes a pseudo-positive where
       the model's confidence :math:`\varsigma(z_{ic})` exceeds the class-aware threshold
       :math:`t_c = \max(\tau, P_c)`. :math:`P_c` is a running mean of the class's confidence
       over the training batches (momentum ``momentum``), as in the paper.
       ``threshold="batch"`` uses the released code's rule instead: above :math:`\tau` and
       above the class's mean confidence in the current batch.
    2. **Loss.** The asymmetric loss of :class:`~ltml.losses.MultiFocalModifierLoss` without
       the co-occurrence modifier, on the corrected targets, with class weights
       :math:`w_c = (1 - \log(n'_c / n'_{max}))^{q}` from the training counts plus the
       pseudo-positives found since the last :meth:`reset` (call it at each epoch start, as the
       released code does), and negatives focused by :math:`\gamma_- + w_c`.

    Nothing is corrected and the loss is 0 until :meth:`set_epoch` reaches ``start_epoch``
    (the released code: 1, one epoch of warm-up). The correction runs without gradient; the
    running mean and the pseudo-counts change only in training mode.

    **Differences from the released code**, all available as arguments: it shifts the
    positives' logits by a margin of 1 (``margin=1.0``; the paper has none, default 0), uses the
    batch-mean threshold (``threshold="batch"``), the exponent :math:`q = 1/6`
    (``weight_power``, default the same), sums the loss and scales it by the batch size over
    the number of positives of the corrected batch (``reduction="sum"`` gives the sum), and
    weights it by 0.2 in the total (the caller's choice). It cannot tell a missing label from
    a negative (``candidates="unobserved"``). In DDP each process keeps its own pseudo-counts.
    Targets must be 0 / 1 (-1 = unknown): soft targets raise a ``ValueError``.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training positives per class.
    tau : float
        Confidence threshold :math:`\tau \in (0, 1)`.
    threshold : {"running", "batch"}
        Class-aware threshold of the paper (running class mean) or of the released code.
    momentum : float
        Weight of the past in the running class mean, in [0, 1).
    candidates : {"unknown", "unobserved"}
        Entries that may become pseudo-positives: -1 only, or everything not positive.
    margin : float
        Shift subtracted from the known positives' logits, in the correction and the loss.
    start_epoch : int
        First epoch (as given to :meth:`set_epoch`) with corrections.
    gamma_pos, gamma_neg, clip, eps, weight_power : float
        As in :func:`ltml.functional.multi_focal_modifier_loss`.
    detach_focal_weight : bool
        Focusing weight without gradient (the released code).
    reduction : {"mean", "sum", "none"}
        Of the loss, as in :class:`~ltml.losses.MultiFocalModifierLoss`.
    unknown : {"ignore", "negative"}
        Policy for the entries still unknown after the correction.

    Attributes
    ----------
    running_mean : Tensor, shape (C,)
        :math:`P_c` (a buffer).
    pseudo_counts : Tensor, shape (C,)
        Pseudo-positives found since the last :meth:`reset` (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import ReflectiveLabelCorrector
    >>> corrector = ReflectiveLabelCorrector([30, 10, 2], start_epoch=0)
    >>> logits = torch.tensor([[2.0, 3.0, -1.0], [0.5, 3.0, 2.0]], requires_grad=True)
    >>> out = corrector(logits, torch.tensor([[1, -1, -1], [0, 1, -1]]))
    >>> out.targets
    tensor([[ 1,  1, -1],
            [ 0,  1,  1]])
    >>> corrector.pseudo_counts
    tensor([0., 1., 1.])
    >>> out.loss.backward()
    """

    _repr_fields = ("tau", "threshold", "candidates", "margin", "start_epoch")
    counts: Tensor
    running_mean: Tensor
    pseudo_counts: Tensor

    def __init__(
        self,
        class_counts: Any,
        *,
        tau: float = 0.7,
        threshold: Literal["running", "batch"] = "running",
        momentum: float = 0.9,
        candidates: Literal["unknown", "unobserved"] = "unknown",
        margin: float = 0.0,
        start_epoch: int = 1,
        gamma_pos: float = 0.0,
        gamma_neg: float = 3.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        weight_power: float = 1 / 6,
        detach_focal_weight: bool = False,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_scalar(tau, "tau", low=0.0, high=1.0, low_open=True, high_open=True)
        check_choice(threshold, "threshold", ("running", "batch"))
        check_scalar(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        check_choice(candidates, "candidates", _CANDIDATES)
        check_int(start_epoch, "start_epoch", low=0)
        check_scalar(margin, "margin", low=0.0)
        check_scalar(weight_power, "weight_power", low=0.0)
        check_asymmetric(gamma_pos, gamma_neg, clip, eps, detach_focal_weight)
        counts = counts_tensor(class_counts).to(torch.float32)
        self.register_buffer("counts", counts)
        self.register_buffer("running_mean", torch.zeros_like(counts))
        self.register_buffer("pseudo_counts", torch.zeros_like(counts))
        self.tau, self.threshold, self.momentum = tau, threshold, momentum
        self.candidates: Literal["unknown", "unobserved"] = candidates
        self.margin, self.start_epoch, self.epoch = margin, start_epoch, 0
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.weight_power, self.detach_focal_weight = weight_power, detach_focal_weight

    def reset(self) -> None:
        """Forget the pseudo-positives counted so far (the class weights return to the counts)."""
        self.pseudo_counts.zero_()

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: corrections run from ``start_epoch`` on; pseudo-counts reset."""
        self.epoch = check_int(epoch, "epoch", low=0)
        self.reset()

    def class_weight(self) -> Tensor:
        r"""Return the class weights :math:`w_c` in use, from counts plus pseudo-positives (C,)."""
        return comic_class_weights(self.counts + self.pseudo_counts, self.weight_power)

    def forward(self, logits: Tensor, targets: Tensor) -> CorrectorOutput:
        """Correct ``(N, C)`` targets by ``(N, C)`` logits; return the loss and the targets."""
        z, y = check_pair(
            logits, targets, self.counts.numel(), soft=False, loss="the Reflective Label Corrector"
        )
        y = y.to(z)  # -1 kept: unknown entries are the candidates
        if self.epoch < self.start_epoch:
            return CorrectorOutput(z.new_zeros(()), targets)
        if self.margin:
            z = torch.where(y > 0, z - self.margin, z)
        with torch.no_grad():
            confidence = torch.sigmoid(z)
            batch_mean = confidence.mean(dim=0)
            if self.training and z.shape[0]:  # an empty batch has no mean: the state stays
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * batch_mean)
            # Above tau and above the class mean: the running one (paper) or the batch's (code).
            mean = self.running_mean if self.threshold == "running" else batch_mean
            corrected = reflective_label_correction(
                z, y, mean.clamp(min=self.tau), candidates=self.candidates
            )
            if self.training:
                self.pseudo_counts += ((corrected > 0) & (y <= 0)).sum(dim=0)
        # MFM's loss without the co-occurrence modifier on the corrected targets (still -1 where
        # unknown, for the policy `unknown`), weighted by the counts plus the pseudo-positives.
        loss = multi_focal_modifier_loss(
            z,
            corrected,
            self.counts + self.pseudo_counts,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            clip=self.clip,
            eps=self.eps,
            weight_power=self.weight_power,
            detach_focal_weight=self.detach_focal_weight,
            reduction=self.reduction,
            unknown=self.unknown,
        )
        return CorrectorOutput(loss, corrected.to(torch.as_tensor(targets).dtype))
