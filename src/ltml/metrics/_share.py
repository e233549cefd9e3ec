"""What one process evaluates: the stored data of a range of classes, in either storage form.

A :class:`Share` holds dense row blocks (their columns of the range) and known entries (of the
range's classes). One process evaluates every class; under DDP each evaluates its own range
(``_distributed``). AP and thresholds take the dense path of ``_ranking`` when there are no
entries, else rank each class chunk's known labels of both forms together (``_entries``); the
thresholded counts add up over the two forms.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._counts import threshold_counts
from ._entries import Entries, class_range, entries_ap, entries_thresholds, entry_counts
from ._ranking import (
    CHUNK_ELEMENTS,
    average_precision_of_blocks,
    common_dtype,
    fit_thresholds_of_blocks,
)

EntriesFn = Callable[[Tensor, Tensor, Tensor, int], Tensor]


@dataclass
class Share:
    """The stored labels of ``width`` classes (local indices ``0 .. width - 1``).

    ``scores`` / ``targets``: dense ``(R, width)`` blocks (targets int8). ``kth``: per block, the
    ``(R, 1)`` k-th largest score of each full row, where the rows were cut into class ranges
    (else the top-k rule reads the blocks' own rows). ``entries``: known entries sorted by
    class, or None.
    """

    width: int
    device: torch.device
    scores: list[Tensor] = field(default_factory=list)
    targets: list[Tensor] = field(default_factory=list)
    kth: list[Tensor] | None = None
    entries: Entries | None = None

    @property
    def dense_rows(self) -> int:
        """Number of dense rows."""
        return sum(s.shape[0] for s in self.scores)


def share_ap(share: Share) -> Tensor:
    """AP of each class of the share, float64 ``(width,)``; NaN for a class with no positive."""
    if share.entries is None and share.scores and share.width:
        return average_precision_of_blocks(share.scores, share.targets)
    return map_entry_chunks(entries_ap, share, math.nan)


def share_thresholds(share: Share) -> Tensor:
    """F1-best threshold of each class of the share, float64 ``(width,)``; inf: no positive."""
    if share.entries is None and share.scores and share.width:
        return fit_thresholds_of_blocks(share.scores, share.targets)
    return map_entry_chunks(entries_thresholds, share, math.inf)


def share_positives(share: Share) -> Tensor:
    """Known positives of each class of the share, int64 ``(width,)``."""
    out = torch.zeros(share.width, dtype=torch.int64, device=share.device)
    for block_y in share.targets:
        out += torch.count_nonzero(block_y == 1, dim=0)
    if share.entries is not None:
        positive = share.entries.labels == 1
        out += torch.bincount(share.entries.classes[positive].long(), minlength=share.width)
    return out


def share_counts(share: Share, threshold: Tensor, top_k: int | None) -> Tensor:
    """``(3, width)`` int64 counts ``Nc, Np, Ng`` at per-class ``threshold`` (``(width,)``)."""
    counts = torch.zeros((3, share.width), dtype=torch.int64, device=share.device)
    if share.width == 0:
        return counts
    if share.scores:
        kth = None if top_k is None else share.kth
        counts += threshold_counts(share.scores, share.targets, threshold, top_k, kth)
    if share.entries is not None:
        counts += entry_counts(share.entries, threshold, top_k is not None, share.width)
    return counts


def map_entry_chunks(fn: EntriesFn, share: Share, if_empty: float) -> Tensor:
    """Apply ``fn`` to the known labels of both forms, a chunk of classes at a time.

    A chunk holds about ``CHUNK_ELEMENTS`` dense elements and entries, so that the extra memory
    stays bounded whatever the number of rows and entries.
    """
    out = torch.full((share.width,), if_empty, dtype=torch.float64, device=share.device)
    entries = share.entries
    dtypes = [s.dtype for s in share.scores] + ([] if entries is None else [entries.scores.dtype])
    if share.width == 0 or not dtypes:
        return out
    dtype = common_dtype(dtypes)
    cost = torch.full((share.width,), share.dense_rows, dtype=torch.int64)
    if entries is not None:
        cost += torch.bincount(entries.classes.long().cpu(), minlength=share.width)
    chunk = (torch.cumsum(cost, 0) - 1).clamp(min=0) // CHUNK_ELEMENTS
    stops = torch.nonzero(chunk[1:] != chunk[:-1]).squeeze(1) + 1
    bounds = [0, *stops.tolist(), share.width]
    for first, stop in itertools.pairwise(bounds):
        classes, scores, labels = [], [], []
        for block_s, block_y in zip(share.scores, share.targets, strict=True):
            y = block_y[:, first:stop]
            row, col = torch.nonzero(y >= 0, as_tuple=True)
            classes.append(col)
            scores.append(block_s[:, first:stop][row, col].to(dtype))
            labels.append(y[row, col])
        if entries is not None:
            part = class_range(entries, first, stop)
            classes.append(entries.classes[part].long() - first)
            scores.append(entries.scores[part].to(dtype))
            labels.append(entries.labels[part])
        out[first:stop] = fn(torch.cat(classes), torch.cat(scores), torch.cat(labels), stop - first)
    return out
