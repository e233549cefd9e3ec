"""Multi-label metrics as stateless functions: average precision and the thresholded metrics.

:func:`average_precision` is the ranking metric (per-class AP, the mAP's terms);
:func:`thresholded_metrics` gives the precision / recall / F1 family that multi-label papers print
beside it (OP, OR, OF1, CP, CR, CF1, with an optional top-k rule), and :func:`fit_thresholds`
chooses one threshold per class on held-out data. :class:`ltml.mAPMeter` computes all of them from
the scores it stored.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce
from types import FrameType
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .._validation import as_labels, as_scores, check_choice, check_int, check_same_shape

__all__ = [
    "EmptyClass",
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "ZeroDivision",
    "average_precision",
    "fit_thresholds",
    "thresholded_metrics",
]

EmptyClass = Literal["nan", "zero"]
ZeroDivision = Literal["zero", "one", "nan"]

# Average precision, exactly as scikit-learn's step-wise sum over distinct thresholds:
#
#     AP = (1 / P) * sum over positives j of TP_j / (TP_j + FP_j),
#
# where TP_j and FP_j count the positives and negatives scoring at least as high as positive j
# (so a tie group counts whole, at its end). Only the negatives need a full sort: they are sorted
# per class as plain floats (unknown labels and positives replaced by -inf, which no finite score
# reaches), and FP_j is one binary search. The positives, usually a small fraction, are sorted
# apart by (class, score) and give TP_j from the ends of their tie groups. The cost is close to
# one float sort per class, numpy's SIMD sort on the CPU.

_CHUNK_ELEMENTS = 1 << 20  # classes are processed in chunks of ~1M elements


def _numpy_sorts(x: Tensor) -> bool:
    """Whether to sort ``x`` with numpy rather than torch.

    On the CPU numpy's SIMD sort is several times faster than ``torch.sort`` / ``torch.topk``;
    on other devices torch keeps the data on the device. (The tests force the torch paths on
    the CPU through this function, to check them against scikit-learn.)
    """
    return x.device.type == "cpu"


def _sort_rows(x: Tensor) -> Tensor:
    """Sort each row of a matrix (which the caller owns) in increasing order, in place on CPU."""
    if _numpy_sorts(x):
        x.numpy().sort(axis=1)
        return x
    return torch.sort(x, dim=1).values


def _chunk_ap(scores: Tensor, codes: Tensor) -> Tensor:
    """AP of each row of ``(C', N)`` scores / label codes (NaN for a row with no positive)."""
    num_rows, n = scores.shape
    negative = codes == 0
    lowest = -math.inf if scores.is_floating_point() else torch.iinfo(scores.dtype).min
    negatives = _sort_rows(scores.masked_fill(~negative, lowest))
    num_neg = torch.count_nonzero(negative, dim=1)

    row, col = torch.nonzero(codes == 1).unbind(1)
    value = scores[row, col]
    # Positives by class, then by decreasing score (two stable sorts).
    order = torch.argsort(value, descending=True, stable=True)
    order = order[torch.argsort(row[order], stable=True)]
    row, value = row[order], value[order]
    num_pos = torch.bincount(row, minlength=num_rows)
    if row.numel() == 0:
        return scores.new_full((num_rows,), torch.nan, dtype=torch.float64)
    start = torch.cumsum(num_pos, 0) - num_pos
    rank = torch.arange(row.numel(), device=row.device) - start[row]

    # TP_j: position of the end of j's tie group among its class's positives, plus one.
    last = torch.ones_like(row, dtype=torch.bool)
    last[:-1] = (row[1:] != row[:-1]) | (value[1:] != value[:-1])
    ends = torch.nonzero(last).squeeze(1)
    true_pos = ends[torch.cumsum(last, 0) - last.long()] - start[row] + 1

    # FP_j: negatives not below the positive's score, by binary search in its class's row.
    queries = value.new_zeros((num_rows, int(num_pos.max())))  # padding unread
    queries[row, rank] = value
    below = torch.searchsorted(negatives, queries)  # entries < the score, fillers included
    # The n - num_neg fillers are below every score but the lowest value itself.
    fillers = (n - num_neg)[row]
    false_pos = num_neg[row] - torch.clamp(below[row, rank] - fillers, min=0)

    precision = true_pos.to(torch.float64) / (true_pos + false_pos).to(torch.float64)
    return torch.bincount(row, weights=precision, minlength=num_rows) / num_pos


def _label_codes(targets: Tensor) -> Tensor:
    """0 / 1 / -1 labels as the 2-bit codes 0 / 1 / 3 (two's complement of -1, masked)."""
    return targets.to(torch.int8) & 3


def _ap_inputs(scores: Any, targets: Any, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """Check a ``(scores, targets)`` pair by their contracts; return both as tensors."""
    s = as_scores(scores, "scores", num_classes).detach()  # metrics need no autograd graph
    y = as_labels(targets, "targets")
    check_same_shape(s, y, "scores", "targets")
    return s, y


def _ap_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return a dtype that keeps every distinct score distinct (half types widen exactly)."""
    if dtype == torch.float64:
        return dtype
    if dtype.is_floating_point:
        return torch.float32
    return torch.int64  # ranked exactly (float64 would merge integers above 2**53)


def _common_dtype(dtypes: Iterable[torch.dtype]) -> torch.dtype:
    """Return the :func:`_ap_dtype` that holds all ``dtypes`` (float64 if ints meet floats)."""
    kinds = {_ap_dtype(d) for d in dtypes}
    if torch.int64 in kinds and len(kinds) > 1:
        return torch.float64
    return reduce(torch.promote_types, kinds)


def _ap_scores(scores: Tensor) -> Tensor:
    """``scores`` in :func:`_ap_dtype` (no copy when already there)."""
    return scores.to(_ap_dtype(scores.dtype))


def _map_class_chunks(
    fn: Callable[[Tensor, Tensor], Tensor], scores: Sequence[Tensor], targets: Sequence[Tensor]
) -> Tensor:
    """Apply ``fn`` to class chunks of row blocks, as ``(C', N)`` scores and label codes.

    The row blocks (a meter's stored batches, or one matrix) are never concatenated: each chunk
    copies only its own columns of every block, transposed, so the extra memory stays a few
    chunks of ~1M elements whatever N and C. Chunks run on worker threads on the CPU.
    """
    n = sum(s.shape[0] for s in scores)
    num_classes, device = scores[0].shape[1], scores[0].device
    dtype = _common_dtype(s.dtype for s in scores)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))

    def run(first: int) -> Tensor:
        columns = slice(first, min(first + step, num_classes))
        width = columns.stop - columns.start
        s = torch.empty((width, n), dtype=dtype, device=device)
        codes = torch.empty((width, n), dtype=torch.int8, device=device)
        row = 0
        for block_s, block_y in zip(scores, targets, strict=True):
            rows = slice(row, row + block_s.shape[0])
            s[:, rows] = block_s[:, columns].T
            codes[:, rows] = _label_codes(block_y[:, columns]).T
            row = rows.stop
        return fn(s, codes)

    firsts = range(0, num_classes, step)
    workers = min(len(firsts), torch.get_num_threads(), os.cpu_count() or 1)
    if device.type == "cpu" and workers > 1:
        # numpy's sort holds one core; class chunks are independent, so spread them.
        with ThreadPoolExecutor(workers) as pool:
            return torch.cat(list(pool.map(run, firsts)))
    return torch.cat([run(first) for first in firsts])


def _average_precision(scores: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """AP per class of validated row blocks of ``(N, C)``, float64 ``(C,)``; NaN if no positive."""
    if sum(s.shape[0] for s in scores) == 0:
        return scores[0].new_full(scores[0].shape[1:], torch.nan, dtype=torch.float64)
    return _map_class_chunks(_chunk_ap, scores, targets)


def _check_empty_class(empty_class: Any) -> None:
    check_choice(empty_class, "empty_class", ("nan", "zero"))


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _warn_user(message: str) -> None:
    """Warn (``UserWarning``) at the line that called into ltml: the outermost ltml frame's caller.

    (Not the first frame outside ltml: a wrapper of another package, such as a profiler or a
    mutation-testing trampoline, may sit between two ltml frames.)
    """
    frame: FrameType | None = sys._getframe()
    level, caller = 1, 1  # warnings.warn's stacklevel of ``frame``, and of the caller found
    while frame is not None:
        if frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            caller = level + 1
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=caller)


def _warn_empty_classes(empty: Tensor, what: str, empty_class: EmptyClass) -> None:
    """One warning listing the classes with no known positive (``empty``, a bool mask)."""
    if bool(empty.any()):
        idx = torch.nonzero(empty).flatten().tolist()
        shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
        value = "NaN and left out of means" if empty_class == "nan" else "0"
        _warn_user(
            f"{len(idx)} class(es) have no positive target (classes {shown}): their {what} "
            f"undefined and reported as {value} (empty_class={empty_class!r})"
        )


def _resolve_empty_classes(ap: Tensor, empty_class: EmptyClass) -> Tensor:
    """Warn once about classes with no known positive, and give their AP the chosen value."""
    empty = torch.isnan(ap)
    _warn_empty_classes(empty, "AP is", empty_class)
    return ap.masked_fill(empty, 0.0) if empty_class == "zero" else ap


def average_precision(scores: Any, targets: Any, *, empty_class: EmptyClass = "nan") -> Tensor:
    r"""Per-class average precision of multi-label scores.

    Non-interpolated AP, identical to scikit-learn's ``average_precision_score(targets[:, k],
    scores[:, k])`` for every class ``k``, tied scores included:

    .. math::
        \mathrm{AP}_k = \sum_t (R_t - R_{t-1}) P_t,

    over the distinct score thresholds ``t`` of class ``k`` in decreasing order, with precision
    ``P_t`` and recall ``R_t`` of the samples scoring at least ``t``. All classes are computed at
    once with one sort; on CUDA tensors the computation stays on the device.

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, C)
        Any scores whose order ranks the samples: logits are best. Used as given, never
        transformed. Probabilities from ``sigmoid`` saturate to exactly 1.0 in float32 above a
        logit of about 17, which ties confident positives and lowers AP.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, ignored for that class only.
    empty_class : {"nan", "zero"}
        AP of a class with no positive target, which is undefined: ``"nan"`` (default) reports
        NaN, so that means can leave it out; ``"zero"`` reports 0, the convention of
        scikit-learn and torchmetrics, for comparing with numbers published that way.
        Either way one warning lists such classes.

    Returns
    -------
    Tensor, shape (C,), float64
        AP of each class, on the device of ``scores``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import average_precision
    >>> scores = torch.tensor([[0.9, -2.0], [0.8, 3.0], [0.1, 1.0], [0.1, 0.5]])
    >>> targets = torch.tensor([[1, 0], [0, 1], [1, 0], [0, -1]])
    >>> average_precision(scores, targets)
    tensor([0.7500, 1.0000], dtype=torch.float64)
    """
    _check_empty_class(empty_class)
    s, y = _ap_inputs(scores, targets)
    return _resolve_empty_classes(_average_precision([s], [y]), empty_class)


# --- thresholded metrics ------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdedSummary:
    r"""Thresholded multi-label metrics over a set of classes (all classes, or one group).

    With ``Nc_k`` correct positive predictions, ``Np_k`` positive predictions and ``Ng_k``
    positive targets of class ``k`` (unknown labels left out):

    Attributes
    ----------
    OP, OR, OF1 : float
        Overall (micro) precision ``ΣNc / ΣNp``, recall ``ΣNc / ΣNg`` and their harmonic mean,
        over every class of the set.
    CP, CR, CF1 : float
        Per-class (macro) precision ``mean_k Nc_k / Np_k``, recall ``mean_k Nc_k / Ng_k`` and
        **the harmonic mean of CP and CR**, as ML-GCN (Chen et al., CVPR 2019) and the papers
        that copy its table define CF1. It is not the mean of the per-class F1 scores.
    mean_f1 : float
        The mean of the per-class F1 scores (scikit-learn's ``f1_score(average="macro")``),
        which some long-tailed papers report under the name "macro F1". Never larger than CF1
        when both average the same classes.
    """

    OP: float
    OR: float
    OF1: float
    CP: float
    CR: float
    CF1: float
    mean_f1: float

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values, ready for ``json.dump`` (NaN becomes ``None``)."""
        return {
            name: _json_number(getattr(self, name))
            for name in ("OP", "OR", "OF1", "CP", "CR", "CF1", "mean_f1")
        }

    def __str__(self) -> str:
        cells = [(name, getattr(self, name)) for name in ("CP", "CR", "CF1", "OP", "OR", "OF1")]
        return "  ".join(f"{name} {100 * value:.2f}" for name, value in cells)


@dataclass(frozen=True)
class ThresholdedMetrics(ThresholdedSummary):
    """What :func:`thresholded_metrics` returns: the summary, per class and per group.

    Attributes
    ----------
    precision, recall, f1 : Tensor, shape (C,), float64
        Per-class values (NaN for a class with no positive target when ``empty_class="nan"``;
        a class never predicted positive gets the ``zero_division`` precision).
    threshold : Tensor, shape (C,), float64
        The threshold of each class that was applied.
    top_k : int or None
        The top-k rule that was applied, if any.
    groups : dict of str to ThresholdedSummary
        The summary over the classes of each group (empty unless groups were given).
    num_empty : int
        Number of classes with no positive target.
    """

    precision: Tensor
    recall: Tensor
    f1: Tensor
    threshold: Tensor
    top_k: int | None
    groups: dict[str, ThresholdedSummary]
    num_empty: int

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values, ready for ``json.dump``.

        NaN becomes ``None``; an infinite threshold becomes the string ``"inf"`` or ``"-inf"``.
        """
        return {
            **super().as_dict(),
            "groups": {name: g.as_dict() for name, g in self.groups.items()},
            "precision": [_json_number(x) for x in self.precision.tolist()],
            "recall": [_json_number(x) for x in self.recall.tolist()],
            "f1": [_json_number(x) for x in self.f1.tolist()],
            # JSON has no infinity: a class never (always) predicted is written "inf" ("-inf"),
            # which float() reads back.
            "threshold": [x if math.isfinite(x) else str(x) for x in self.threshold.tolist()],
            "top_k": self.top_k,
            "num_empty": self.num_empty,
        }


def _json_number(x: float) -> float | None:
    return None if math.isnan(x) else x


_ZERO_DIVISION = {"zero": 0.0, "one": 1.0, "nan": math.nan}


def _check_zero_division(zero_division: Any) -> None:
    check_choice(zero_division, "zero_division", tuple(_ZERO_DIVISION))


def _as_thresholds(threshold: Any, num_classes: int) -> Tensor:
    """Return a scalar or one threshold per class as a float64 ``(C,)`` tensor on the CPU."""
    if isinstance(threshold, bool) or (
        isinstance(threshold, (Tensor, np.ndarray)) and threshold.dtype in (torch.bool, np.bool_)
    ):
        raise TypeError("`threshold` must be a number or a vector of numbers, got booleans")
    if isinstance(threshold, (int, float, Tensor, np.ndarray, list, tuple)):
        try:
            value = torch.as_tensor(threshold, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            value = None
        if value is not None and value.ndim <= 1:
            if value.ndim == 1 and value.numel() != num_classes:
                raise ValueError(
                    f"`threshold` must be a number or hold one value per class "
                    f"({num_classes}), got {value.numel()} values"
                )
            nan = int(torch.isnan(value).sum())
            if nan:
                raise ValueError(f"`threshold` must not be NaN, got {nan} NaN value(s)")
            return value.expand(num_classes).clone()
    shape = tuple(threshold.shape) if hasattr(threshold, "shape") else type(threshold).__name__
    raise TypeError(
        f"`threshold` must be a number or a 1-D vector of {num_classes} numbers, got {shape}"
    )


def _check_top_k(top_k: Any, num_classes: int) -> int | None:
    return None if top_k is None else check_int(top_k, "top_k", low=1, high=num_classes)


def _round_up(threshold: Tensor, dtype: torch.dtype) -> Tensor:
    """Round float64 thresholds up to the nearest values of ``dtype``.

    For scores of that dtype, ``score >= result`` is exactly ``score >= threshold``, and the
    comparison runs in the scores' own precision (several times faster than in float64).
    """
    if dtype == torch.float64 or not dtype.is_floating_point:
        return threshold  # integer scores compare in float64
    rounded = threshold.to(dtype)
    low = rounded.to(torch.float64) < threshold
    return torch.where(low, torch.nextafter(rounded, torch.full_like(rounded, math.inf)), rounded)


def _kth_largest(scores: Tensor, k: int) -> Tensor:
    """Return the k-th largest score of each row, ties counted, as a ``(B, 1)`` column."""
    if _numpy_sorts(scores):
        c = scores.shape[1]
        return torch.from_numpy(np.sort(scores.numpy(), axis=1)[:, c - k : c - k + 1])
    return torch.topk(scores, k, dim=1).values[:, -1:]


def _threshold_counts(
    scores: Sequence[Tensor], targets: Sequence[Tensor], threshold: Tensor, top_k: int | None
) -> Tensor:
    """``(3, C)`` int64 counts ``Nc, Np, Ng`` of validated row blocks of ``(N, C)``."""
    num_classes, device = scores[0].shape[1], scores[0].device
    counts = torch.zeros((3, num_classes), dtype=torch.int64, device=device)
    step = max(1, _CHUNK_ELEMENTS // num_classes)  # bounded temporaries at any N
    for block_s, block_y in zip(scores, targets, strict=True):
        for first in range(0, block_s.shape[0], step):
            s = _ap_scores(block_s[first : first + step])
            y = block_y[first : first + step]
            predicted = (s >= _round_up(threshold, s.dtype).to(device)) & (y >= 0)
            if top_k is not None:
                # Among the k highest: fewer than k classes of the image score strictly
                # higher, so tied scores are all kept and column order never matters.
                predicted &= s >= _kth_largest(s, top_k)
            positive = y == 1
            counts[0] += torch.count_nonzero(predicted & positive, dim=0)
            counts[1] += torch.count_nonzero(predicted, dim=0)
            counts[2] += torch.count_nonzero(positive, dim=0)
    return counts


def _ratio(num: Tensor, den: Tensor, if_zero: float) -> Tensor:
    out = num.to(torch.float64) / den.to(torch.float64)
    return out.masked_fill(den == 0, if_zero)


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else (math.nan if math.isnan(p + r) else 0.0)


def _nanmean(x: Tensor) -> float:
    """Mean of the non-NaN entries of ``x``; NaN if there are none."""
    kept = x[~torch.isnan(x)]
    return float(kept.mean()) if kept.numel() else math.nan


def _summary(
    counts: Tensor, precision: Tensor, recall: Tensor, f1: Tensor, zero: float, empty: float
) -> ThresholdedSummary:
    nc, np_, ng = counts.sum(1).tolist()
    op = nc / np_ if np_ else zero
    or_ = nc / ng if ng else empty
    cp, cr = _nanmean(precision), _nanmean(recall)
    return ThresholdedSummary(
        OP=op,
        OR=or_,
        # = harmonic mean of OP and OR, and defined (0) when OP is not: no correct prediction
        OF1=2 * nc / (np_ + ng) if np_ + ng else empty,
        CP=cp,
        CR=cr,
        CF1=_harmonic(cp, cr),
        mean_f1=_nanmean(f1),
    )


def _thresholded_metrics(
    counts: Tensor,
    threshold: Tensor,
    top_k: int | None,
    zero_division: ZeroDivision,
    empty_class: EmptyClass,
    groups: Mapping[str, Sequence[int]],
) -> ThresholdedMetrics:
    """Compute the metrics of ``(3, C)`` counts ``Nc, Np, Ng``, overall and per group."""
    counts = counts.cpu()
    nc, np_, ng = counts
    empty_mask = ng == 0
    empty = math.nan if empty_class == "nan" else 0.0
    zero = _ZERO_DIVISION[zero_division]
    precision = _ratio(nc, np_, zero)
    recall = _ratio(nc, ng, empty)
    # = 2PR / (P + R), and 0 (not undefined) when P is undefined but the class has positives
    f1 = _ratio(2 * nc, np_ + ng, empty).masked_fill(empty_mask, empty)
    if empty_class == "nan":  # the class is left out of every per-class mean
        precision = precision.masked_fill(empty_mask, math.nan)

    def summarise(idx: Sequence[int] | slice) -> ThresholdedSummary:
        return _summary(counts[:, idx], precision[idx], recall[idx], f1[idx], zero, empty)

    overall = summarise(slice(None))
    return ThresholdedMetrics(
        **vars(overall),
        precision=precision,
        recall=recall,
        f1=f1,
        threshold=threshold,
        top_k=top_k,
        groups={name: summarise(list(idx)) for name, idx in groups.items()},
        num_empty=int(empty_mask.sum()),
    )


def thresholded_metrics(
    scores: Any,
    targets: Any,
    *,
    threshold: float | Sequence[float] | Tensor,
    top_k: int | None = None,
    zero_division: ZeroDivision = "zero",
    empty_class: EmptyClass = "nan",
) -> ThresholdedMetrics:
    r"""Precision, recall and F1 of thresholded multi-label scores: OP, OR, OF1, CP, CR, CF1.

    Image ``i`` is predicted positive for class ``k`` when ``scores[i, k] >= threshold[k]``
    (and, with ``top_k``, when fewer than ``top_k`` classes of image ``i`` score strictly
    higher). Per class: ``Nc_k`` correct positive predictions, ``Np_k`` positive predictions,
    ``Ng_k`` positive targets, counted over the known labels (-1 is left out for that class).

    .. math::
        \mathrm{OP} = \frac{\sum_k N^c_k}{\sum_k N^p_k},\quad
        \mathrm{OR} = \frac{\sum_k N^c_k}{\sum_k N^g_k},\quad
        \mathrm{CP} = \frac{1}{C}\sum_k \frac{N^c_k}{N^p_k},\quad
        \mathrm{CR} = \frac{1}{C}\sum_k \frac{N^c_k}{N^g_k},

    with ``OF1`` and ``CF1`` the harmonic means of (OP, OR) and (CP, CR), as in ML-GCN
    (Chen et al., CVPR 2019). ``mean_f1`` is the mean of the per-class F1 scores, a different
    number (scikit-learn's macro F1).

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, C)
        Logits or probabilities: used as given.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, ignored for that class only.
    threshold : float or sequence of float or Tensor of shape (C,)
        No default on purpose: 0 for logits and 0.5 for probabilities are the usual choices
        (the same decision), or a vector from :func:`fit_thresholds`.
    top_k : int, optional
        Also require the class to be among the image's ``top_k`` highest scores (3 in the
        literature). Tied scores at the k-th place are all kept.
    zero_division : {"zero", "one", "nan"}
        Precision of a class never predicted positive (and OP when nothing is): 0 (default;
        ML-GCN's code and scikit-learn's default), 1, or NaN and left out of CP.
    empty_class : {"nan", "zero"}
        A class with no positive target has no recall: its per-class values are NaN and it is
        left out of CP / CR / CF1 / ``mean_f1`` (default, as for the mAP), or its recall and F1
        are 0 and counted, as scikit-learn does. The overall metrics count every class. One
        warning lists such classes.

    Returns
    -------
    ThresholdedMetrics
        Summary (``OP``, ``OR``, ``OF1``, ``CP``, ``CR``, ``CF1``, ``mean_f1``) and per-class
        ``precision``, ``recall``, ``f1``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import thresholded_metrics
    >>> logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 4.0, 1.5], [0.1, 0.2, -2.0]])
    >>> targets = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 1]])
    >>> m = thresholded_metrics(logits, targets, threshold=0.0)
    >>> print(m)
    CP 66.67  CR 83.33  CF1 74.07  OP 66.67  OR 80.00  OF1 72.73
    >>> round(m.mean_f1, 4)  # the mean of per-class F1: not CF1
    0.7222
    >>> print(thresholded_metrics(logits, targets, threshold=0.0, top_k=1))
    CP 66.67  CR 66.67  CF1 66.67  OP 100.00  OR 60.00  OF1 75.00
    """
    _check_zero_division(zero_division)
    _check_empty_class(empty_class)
    s, y = _ap_inputs(scores, targets)
    num_classes = s.shape[1]
    thresholds = _as_thresholds(threshold, num_classes)
    top_k = _check_top_k(top_k, num_classes)
    counts = _threshold_counts([s], [y], thresholds, top_k)
    _warn_empty_classes(counts[2] == 0, "per-class metrics are", empty_class)
    return _thresholded_metrics(counts, thresholds, top_k, zero_division, empty_class, {})


# --- thresholds fitted on held-out data -----------------------------------------------------------


def _chunk_fit_f1(scores: Tensor, codes: Tensor) -> Tensor:
    """F1-maximising threshold of each row of ``(C', N)`` scores / label codes."""
    values, order = torch.sort(scores, dim=1, descending=True)
    code = codes.gather(1, order)
    true_pos = torch.cumsum(code == 1, dim=1)
    predicted = torch.cumsum(code != 3, dim=1)  # known labels scoring at least this value
    num_pos = true_pos[:, -1:]
    # A threshold is a distinct score value: only the last sample of a tie group counts.
    group_end = torch.ones_like(values, dtype=torch.bool)
    group_end[:, :-1] = values[:, :-1] != values[:, 1:]
    f1 = (2 * true_pos).to(torch.float64) / (predicted + num_pos).to(torch.float64)
    f1 = f1.masked_fill(~group_end | (true_pos == 0), -1.0)
    best = f1.argmax(dim=1, keepdim=True)  # the first maximum: the highest such threshold
    threshold = values.gather(1, best).squeeze(1).to(torch.float64)
    return threshold.masked_fill(num_pos.squeeze(1) == 0, math.inf)


def _fit_thresholds(scores: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """Per-class F1-maximising thresholds of validated row blocks, float64 ``(C,)``."""
    if sum(s.shape[0] for s in scores) == 0:
        return scores[0].new_full(scores[0].shape[1:], math.inf, dtype=torch.float64)
    return _map_class_chunks(_chunk_fit_f1, scores, targets)


def fit_thresholds(scores: Any, targets: Any, *, metric: Literal["f1"] = "f1") -> Tensor:
    """One threshold per class that maximises the class's F1 on held-out data.

    Exact: every distinct score value of a class is a candidate (prediction positive when
    ``score >= threshold``, as in :func:`thresholded_metrics`), all classes at once with one
    sort. Where several thresholds reach the best F1, the highest is returned. Fit on a
    validation split, never on the data you report.

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, C)
        Held-out scores (logits or probabilities; the thresholds are in the same units).
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, ignored for that class only.
    metric : {"f1"}
        What to maximise per class.

    Returns
    -------
    Tensor, shape (C,), float64
        A threshold per class (``inf``: never predict, for a class with no positive target;
        one warning lists such classes).

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import fit_thresholds, thresholded_metrics
    >>> val_logits = torch.tensor([[2.0, -1.0], [0.5, -0.5], [-1.0, 1.0], [-2.0, -2.0]])
    >>> val_targets = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]])
    >>> fit_thresholds(val_logits, val_targets)
    tensor([ 0.5000, -0.5000], dtype=torch.float64)
    >>> thr = fit_thresholds(val_logits, val_targets)
    >>> thresholded_metrics(val_logits, val_targets, threshold=thr).CF1
    1.0
    """
    check_choice(metric, "metric", ("f1",))
    s, y = _ap_inputs(scores, targets)
    thresholds = _fit_thresholds([s], [y])
    _warn_empty_classes(torch.isinf(thresholds), "threshold is", "nan")
    return thresholds
