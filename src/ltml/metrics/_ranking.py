"""Per-class ranking of validated row blocks: average precision and the F1-best thresholds.

Both rank each class's samples by score, so they share the machinery here: classes are taken in
chunks of ~1M elements whatever N and C, the row blocks (one matrix, or a meter's stored batches)
are never concatenated, and every score dtype is ranked exactly. The sorts run on numpy on the
CPU and on torch elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import reduce

import numpy as np
import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 20  # classes are processed in chunks of ~1M elements


def numpy_sorts(x: Tensor) -> bool:
    """Whether to sort ``x`` with numpy rather than torch.

    On the CPU numpy's SIMD sort is several times faster than ``torch.sort`` / ``torch.topk``;
    on other devices torch keeps the data on the device. (The tests force the torch paths on
    the CPU through this function, to check them against scikit-learn.)
    """
    return x.device.type == "cpu"


def sort_rows(x: Tensor) -> Tensor:
    """Sort each row of a matrix (which the caller owns) in increasing order, in place on CPU."""
    if numpy_sorts(x):
        x.numpy().sort(axis=1)
        return x
    return torch.sort(x, dim=1).values


def kth_largest(scores: Tensor, k: int) -> Tensor:
    """Return the k-th largest score of each row, ties counted, as a ``(B, 1)`` column."""
    if numpy_sorts(scores):
        c = scores.shape[1]
        return torch.from_numpy(np.sort(scores.numpy(), axis=1)[:, c - k : c - k + 1])
    return torch.topk(scores, k, dim=1).values[:, -1:]


def label_codes(targets: Tensor) -> Tensor:
    """0 / 1 / -1 labels as the 2-bit codes 0 / 1 / 3 (two's complement of -1, masked)."""
    return targets.to(torch.int8) & 3


def rank_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return a dtype that keeps every distinct score distinct (half types widen exactly)."""
    if dtype == torch.float64:
        return dtype
    if dtype.is_floating_point:
        return torch.float32
    return torch.int64  # ranked exactly (float64 would merge integers above 2**53)


def common_dtype(dtypes: Iterable[torch.dtype]) -> torch.dtype:
    """Return the :func:`rank_dtype` that holds all ``dtypes`` (float64 if ints meet floats)."""
    kinds = {rank_dtype(d) for d in dtypes}
    if torch.int64 in kinds and len(kinds) > 1:
        return torch.float64
    return reduce(torch.promote_types, kinds)


def ranked(scores: Tensor) -> Tensor:
    """``scores`` in :func:`rank_dtype` (no copy when already there)."""
    return scores.to(rank_dtype(scores.dtype))


def map_class_chunks(
    fn: Callable[[Tensor, Tensor], Tensor], scores: Sequence[Tensor], targets: Sequence[Tensor]
) -> Tensor:
    """Apply ``fn`` to class chunks of row blocks, as ``(C', N)`` scores and label codes.

    The row blocks (a meter's stored batches, or one matrix) are never concatenated: each chunk
    copies only its own columns of every block, transposed, so the extra memory stays a few
    chunks of ~1M elements whatever N and C. Chunks run on worker threads on the CPU.
    """
    n = sum(s.shape[0] for s in scores)
    num_classes, device = scores[0].shape[1], scores[0].device
    dtype = common_dtype(s.dtype for s in scores)
    step = max(1, CHUNK_ELEMENTS // max(n, 1))

    def run(first: int) -> Tensor:
        columns = slice(first, min(first + step, num_classes))
        width = columns.stop - columns.start
        s = torch.empty((width, n), dtype=dtype, device=device)
        codes = torch.empty((width, n), dtype=torch.int8, device=device)
        row = 0
        for block_s, block_y in zip(scores, targets, strict=True):
            rows = slice(row, row + block_s.shape[0])
            s[:, rows] = block_s[:, columns].T
            codes[:, rows] = label_codes(block_y[:, columns]).T
            row = rows.stop
        return fn(s, codes)

    firsts = range(0, num_classes, step)
    workers = min(len(firsts), torch.get_num_threads(), os.cpu_count() or 1)
    if device.type == "cpu" and workers > 1:
        # numpy's sort holds one core; class chunks are independent, so spread them.
        with ThreadPoolExecutor(workers) as pool:
            return torch.cat(list(pool.map(run, firsts)))
    return torch.cat([run(first) for first in firsts])


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


def chunk_ap(scores: Tensor, codes: Tensor) -> Tensor:
    """AP of each row of ``(C', N)`` scores / label codes (NaN for a row with no positive)."""
    num_rows, n = scores.shape
    negative = codes == 0
    lowest = -math.inf if scores.is_floating_point() else torch.iinfo(scores.dtype).min
    negatives = sort_rows(scores.masked_fill(~negative, lowest))
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


def average_precision_of_blocks(scores: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """AP per class of validated row blocks of ``(N, C)``, float64 ``(C,)``; NaN if no positive."""
    if sum(s.shape[0] for s in scores) == 0:
        return scores[0].new_full(scores[0].shape[1:], torch.nan, dtype=torch.float64)
    return map_class_chunks(chunk_ap, scores, targets)


def chunk_fit_f1(scores: Tensor, codes: Tensor) -> Tensor:
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


def fit_thresholds_of_blocks(scores: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """Per-class F1-maximising thresholds of validated row blocks, float64 ``(C,)``."""
    if sum(s.shape[0] for s in scores) == 0:
        return scores[0].new_full(scores[0].shape[1:], math.inf, dtype=torch.float64)
    return map_class_chunks(chunk_fit_f1, scores, targets)


def keep_fallback(
    thresholds: Tensor, positives: Tensor, min_positives: int, fallback: Tensor | None
) -> Tensor:
    """Fitted thresholds, with ``fallback`` where a class has fewer than ``min_positives``.

    ``positives``: each class's known positives in the data the thresholds were fitted on.
    """
    if fallback is None:
        return thresholds
    few = positives.to(thresholds.device) < min_positives
    return torch.where(few, fallback.to(thresholds.device), thresholds)
