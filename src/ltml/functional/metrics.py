"""Average precision, the ranking metric of multi-label recognition, as a stateless function.

:class:`ltml.mAPMeter` calls :func:`average_precision` on the scores it stored.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import torch
from torch import Tensor

from .._validation import as_labels, as_scores, check_choice, check_same_shape

__all__ = ["EmptyClass", "average_precision"]

EmptyClass = Literal["nan", "zero"]

# Average precision by one sort of packed 64-bit keys. Each (score, label) pair of a class becomes
#
#     key = class << 35 | rank(score, descending) << 2 | code
#
# with code 0 for a negative, 1 for a positive and 3 for an unknown label,
#
# so sorting a class's keys orders its samples by decreasing score and carries every label with
# its score; numpy's SIMD sort of int64 is several times faster than an argsort + gather. Tied
# scores share the rank bits, and the end of a tie group is where those bits change. Then
#
#     AP = (1 / P) * sum over positives j of precision at the end of j's tie group,
#
# which equals scikit-learn's step-wise sum over distinct thresholds. Only the positives (usually
# a small fraction) are visited after the sort.

_CODE_BITS = 2
_RANK_BITS = 33  # a float32 mapped to an order-preserving integer spans 2**32 + 1 values
_ROW_SHIFT = _RANK_BITS + _CODE_BITS
_CHUNK_ELEMENTS = 1 << 20  # classes are processed in chunks of ~8 MiB of keys


def _float32_rank(scores: Tensor) -> Tensor:
    """Map float32 scores to int64 ranks in [1, 2**32] that increase as the score *decreases*."""
    bits = (scores + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0: they must tie
    # Flipping the magnitude bits of negative floats makes the int32 order the float order.
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (1 << 31) - bits.to(torch.int64)


def _dense_rank(scores: Tensor) -> Tensor:
    """Descending dense ranks of each row (float64 scores do not fit the packed key)."""
    values, order = torch.sort(scores, dim=1, descending=True)
    new_value = torch.ones_like(values, dtype=torch.int64)
    new_value[:, 1:] = values[:, 1:] != values[:, :-1]
    ranks = torch.empty_like(new_value)
    ranks.scatter_(1, order, torch.cumsum(new_value, dim=1))
    return ranks


def _sorted_keys(scores: Tensor, codes: Tensor) -> Tensor:
    """Pack ``(C', N)`` scores and label codes into per-class keys and sort them, flattened."""
    rank = _float32_rank(scores) if scores.dtype == torch.float32 else _dense_rank(scores)
    rows = torch.arange(scores.shape[0], device=scores.device, dtype=torch.int64)
    keys = rank.mul_(1 << _CODE_BITS)
    keys.bitwise_or_(codes).bitwise_or_(rows.unsqueeze(1) << _ROW_SHIFT)
    return _sort_rows(keys).view(-1)


def _sort_rows(keys: Tensor) -> Tensor:
    """Sort each row of an int64 matrix.

    On the CPU in place with numpy, whose SIMD sort is several times faster than ``torch.sort``
    there; on other devices with ``torch.sort``, so the data stays on the device.
    """
    if keys.device.type == "cpu":
        keys.numpy().sort(axis=1)
        return keys
    return torch.sort(keys, dim=1).values


def _count_through(sorted_keys: Tensor, queries: Tensor, starts: Tensor, row: Tensor) -> Tensor:
    """Per query, how many of its class's ``sorted_keys`` are <= the query."""
    return torch.searchsorted(sorted_keys, queries, right=True) - starts[row]


def _chunk_ap(scores: Tensor, codes: Tensor) -> Tensor:
    """AP of each row of ``(C', N)`` scores / label codes (NaN for a row with no positive)."""
    num_rows, n = scores.shape
    keys = _sorted_keys(scores, codes)
    code = keys & 3
    pos = torch.nonzero(code == 1).squeeze(1)
    pos_keys = keys[pos]
    row = pos_keys >> _ROW_SHIFT
    num_pos = torch.bincount(row, minlength=num_rows)
    pos_start = torch.cumsum(num_pos, 0) - num_pos

    # Samples ranked at or above the end of each positive's tie group. Without a tie that is the
    # positive itself; the rare tied ones are found by binary search.
    seen = pos + 1 - row * n
    true_pos = torch.arange(1, pos.numel() + 1, device=keys.device) - pos_start[row]
    after = torch.clamp(pos + 1, max=keys.numel() - 1)
    tied = ((keys[after] >> _CODE_BITS) == (pos_keys >> _CODE_BITS)) & (pos + 1 < keys.numel())
    if bool(tied.any()):
        group_end = pos_keys[tied] | 3
        row_start = torch.arange(num_rows, device=keys.device) * n
        seen[tied] = _count_through(keys, group_end, row_start, row[tied])
        true_pos[tied] = _count_through(pos_keys, group_end, pos_start, row[tied])

    unknown = torch.nonzero(code == 3).squeeze(1)
    if unknown.numel():  # unknown labels are ranked but count as neither positive nor negative
        unk_keys = keys[unknown]
        num_unk = torch.bincount(unk_keys >> _ROW_SHIFT, minlength=num_rows)
        seen -= _count_through(unk_keys, pos_keys | 3, torch.cumsum(num_unk, 0) - num_unk, row)

    precision = true_pos.to(torch.float64) / seen.to(torch.float64)
    return torch.bincount(row, weights=precision, minlength=num_rows) / num_pos


def _label_codes(targets: Tensor) -> Tensor:
    """0 / 1 / -1 labels as the 2-bit codes 0 / 1 / 3 (two's complement of -1, masked)."""
    return targets.to(torch.int8) & 3


def _ap_inputs(scores: Any, targets: Any, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """Check a ``(scores, targets)`` pair by their contracts; return both as tensors."""
    s = as_scores(scores, "scores", num_classes)
    y = as_labels(targets, "targets")
    check_same_shape(s, y, "scores", "targets")
    return s, y


def _ap_scores(scores: Tensor) -> Tensor:
    """Scores in a dtype that keeps every distinct value distinct (half types widen exactly)."""
    if scores.dtype == torch.float64:
        return scores
    if scores.is_floating_point():
        return scores.to(torch.float32)
    return scores.to(torch.int64)  # ranked exactly (float64 would merge integers above 2**53)


def _average_precision(scores: Tensor, targets: Tensor) -> Tensor:
    """AP per class of validated ``(N, C)`` inputs, float64 ``(C,)``; NaN where no positive."""
    n, num_classes = scores.shape
    if n == 0:
        return torch.full((num_classes,), torch.nan, dtype=torch.float64, device=scores.device)
    step = max(1, _CHUNK_ELEMENTS // n)

    def chunk_ap(first: int) -> Tensor:
        # Each chunk transposes only its own columns: peak memory stays a few chunks.
        columns = slice(first, first + step)
        s = _ap_scores(scores[:, columns]).T.contiguous()
        return _chunk_ap(s, _label_codes(targets[:, columns]).T.contiguous())

    firsts = range(0, num_classes, step)
    workers = min(len(firsts), torch.get_num_threads(), os.cpu_count() or 1)
    if scores.device.type == "cpu" and workers > 1:
        # numpy's sort holds one core; class chunks are independent, so spread them.
        with ThreadPoolExecutor(workers) as pool:
            return torch.cat(list(pool.map(chunk_ap, firsts)))
    return torch.cat([chunk_ap(first) for first in firsts])


def _check_empty_class(empty_class: Any) -> None:
    check_choice(empty_class, "empty_class", ("nan", "zero"))


def _resolve_empty_classes(ap: Tensor, empty_class: EmptyClass, stacklevel: int = 3) -> Tensor:
    """Warn once about classes with no known positive, and give their AP the chosen value."""
    empty = torch.isnan(ap)
    if bool(empty.any()):
        idx = torch.nonzero(empty).flatten().tolist()
        shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
        value = "NaN and left out of means" if empty_class == "nan" else "0"
        warnings.warn(
            f"{len(idx)} class(es) have no positive target (classes {shown}): their AP is "
            f"undefined and reported as {value} (empty_class={empty_class!r})",
            UserWarning,
            stacklevel=stacklevel,
        )
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
    return _resolve_empty_classes(_average_precision(s, y), empty_class)
