"""Thresholded metrics from counts: ``Nc, Np, Ng`` per class, and the metrics they give.

The counts are taken over validated row blocks (one matrix, or a meter's stored batches); the
precision / recall / F1 family follows from them, overall, per class and per class group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from .._validation import check_choice
from ._empty_classes import EmptyClass, nanmean
from ._ranking import CHUNK_ELEMENTS, kth_largest, ranked

if TYPE_CHECKING:
    from .thresholded import ThresholdedMetrics

ZeroDivision = Literal["zero", "one", "nan"]
ZERO_DIVISION = {"zero": 0.0, "one": 1.0, "nan": math.nan}  # the precision of Np = 0


def check_zero_division(zero_division: Any) -> None:
    """Check a ``zero_division`` argument: the precision of a class never predicted positive."""
    check_choice(zero_division, "zero_division", tuple(ZERO_DIVISION))


def round_up(threshold: Tensor, dtype: torch.dtype) -> Tensor:
    """Round float64 thresholds up to the nearest values of ``dtype``.

    For scores of that dtype, ``score >= result`` is exactly ``score >= threshold``, and the
    comparison runs in the scores' own precision (several times faster than in float64).
    """
    if dtype == torch.float64 or not dtype.is_floating_point:
        return threshold  # integer scores compare in float64
    rounded = threshold.to(dtype)
    low = rounded.to(torch.float64) < threshold
    return torch.where(low, torch.nextafter(rounded, torch.full_like(rounded, math.inf)), rounded)


def threshold_counts(
    scores: Sequence[Tensor],
    targets: Sequence[Tensor],
    threshold: Tensor,
    top_k: int | None,
    kth: Sequence[Tensor] | None = None,
) -> Tensor:
    """``(3, C)`` int64 counts ``Nc, Np, Ng`` of validated row blocks of ``(N, C)``.

    With ``top_k``, ``kth`` may give each block's ``(R, 1)`` k-th largest score of every row,
    for blocks that hold only some columns of their rows (a class share under DDP).
    """
    num_classes, device = scores[0].shape[1], scores[0].device
    counts = torch.zeros((3, num_classes), dtype=torch.int64, device=device)
    step = max(1, CHUNK_ELEMENTS // num_classes)  # bounded temporaries at any N
    for b, (block_s, block_y) in enumerate(zip(scores, targets, strict=True)):
        for first in range(0, block_s.shape[0], step):
            s = ranked(block_s[first : first + step])
            y = block_y[first : first + step]
            predicted = (s >= round_up(threshold, s.dtype).to(device)) & (y >= 0)
            if top_k is not None:
                # Among the k highest: fewer than k classes of the image score strictly
                # higher, so tied scores are all kept and column order never matters.
                top = kth_largest(s, top_k) if kth is None else kth[b][first : first + step]
                predicted &= s >= top
            positive = y == 1
            counts[0] += torch.count_nonzero(predicted & positive, dim=0)
            counts[1] += torch.count_nonzero(predicted, dim=0)
            counts[2] += torch.count_nonzero(positive, dim=0)
    return counts


def ratio(num: Tensor, den: Tensor, if_zero: float) -> Tensor:
    """``num / den`` in float64, ``if_zero`` where ``den`` is 0."""
    out = num.to(torch.float64) / den.to(torch.float64)
    return out.masked_fill(den == 0, if_zero)


def harmonic(p: float, r: float) -> float:
    """Return the harmonic mean of ``p`` and ``r``: 0 when both are 0, NaN when either is NaN."""
    return 2 * p * r / (p + r) if p + r > 0 else (math.nan if math.isnan(p + r) else 0.0)


def summary(
    counts: Tensor, precision: Tensor, recall: Tensor, f1: Tensor, zero: float, empty: float
) -> dict[str, float]:
    """Return the summary fields of a set of classes from their ``(3, C')`` counts and values."""
    nc, np_, ng = counts.sum(1).tolist()
    op = nc / np_ if np_ else zero
    or_ = nc / ng if ng else empty
    cp, cr = nanmean(precision), nanmean(recall)
    return {
        "OP": op,
        "OR": or_,
        # = harmonic mean of OP and OR, and defined (0) when OP is not: no correct prediction
        "OF1": 2 * nc / (np_ + ng) if np_ + ng else empty,
        "CP": cp,
        "CR": cr,
        "CF1": harmonic(cp, cr),
        "mean_f1": nanmean(f1),
    }


def thresholded_of_counts(
    counts: Tensor,
    threshold: Tensor,
    top_k: int | None,
    zero_division: ZeroDivision,
    empty_class: EmptyClass,
    groups: Mapping[str, Sequence[int]],
) -> ThresholdedMetrics:
    """Compute the metrics of ``(3, C)`` counts ``Nc, Np, Ng``, overall and per group."""
    # Imported here: the module of the result types imports this one.
    from .thresholded import ThresholdedMetrics, ThresholdedSummary

    counts = counts.cpu()
    nc, np_, ng = counts
    empty_mask = ng == 0
    empty = math.nan if empty_class == "nan" else 0.0
    zero = ZERO_DIVISION[zero_division]
    precision = ratio(nc, np_, zero)
    recall = ratio(nc, ng, empty)
    # = 2PR / (P + R), and 0 (not undefined) when P is undefined but the class has positives
    f1 = ratio(2 * nc, np_ + ng, empty).masked_fill(empty_mask, empty)
    if empty_class == "nan":  # the class is left out of every per-class mean
        precision = precision.masked_fill(empty_mask, math.nan)

    def group(idx: list[int]) -> ThresholdedSummary:
        return ThresholdedSummary(
            **summary(counts[:, idx], precision[idx], recall[idx], f1[idx], zero, empty)
        )

    return ThresholdedMetrics(
        **summary(counts, precision, recall, f1, zero, empty),
        precision=precision,
        recall=recall,
        f1=f1,
        threshold=threshold,
        top_k=top_k,
        groups={name: group(list(idx)) for name, idx in groups.items()},
        num_empty=int(empty_mask.sum()),
    )
