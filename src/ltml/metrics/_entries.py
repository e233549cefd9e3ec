"""Labels kept as their known entries: the meter's form for batches whose labels are mostly unknown.

AP, the F1-best thresholds and the thresholded counts read only the known labels of a class, so a
batch of OpenImages-like labels (about 0.1 % verified) is kept as the score, class and label of
each known entry. The top-k rule needs each image's full row of scores: it is applied when the
batch arrives (one flag per kept entry), since the row is not kept.

Per class the entries are ranked by one sort of ``(class, score)``; every quantity is computed
as in ``_ranking`` (same operations, in the same order), so the two forms give identical values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._ranking import CHUNK_ELEMENTS, common_dtype, kth_largest, ranked

# A batch is kept as its known entries when at most this share of its labels is known. An entry
# costs its score, an int32 class and an int8 label (9 bytes with float32 scores), a dense
# element its score and an int8 label (5 bytes): at a quarter known, the entries take half.
SPARSE_BELOW = 0.25


@dataclass(frozen=True)
class Entries:
    """The known labels of some rows: ``(n,)`` tensors, one element per known (row, class)."""

    classes: Tensor  # int32 class indices (sorted, once merged by ``merge_entries``)
    scores: Tensor  # the scores, in the dtype given (merged: the common ranking dtype)
    labels: Tensor  # int8 0 / 1
    top: Tensor | None  # bool: the score is among its row's top_k (only when top_k is set)
    rows: int = 0  # number of rows the entries came from

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        parts = [self.classes, self.scores, self.labels]
        if self.top is not None:
            parts.append(self.top)
        return sum(t.numel() * t.element_size() for t in parts)


# On the CPU a buffer of known entries is at least this large (untouched pages cost no memory):
# the C allocator then maps it apart instead of placing it between the short-lived batches, whose
# freed space it could otherwise not reuse (the memory would grow with every batch).
MAPPED_BYTES = 48 << 20


class Growable:
    """A 1-D tensor that grows by doubling (amortised copies), filled from the front."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.data = torch.empty(0, dtype=dtype, device=device)
        self.size = 0

    def extend(self, values: Tensor) -> None:
        """Append ``values`` (1-D, of this dtype)."""
        need = self.size + values.numel()
        if need > self.data.numel():
            floor = MAPPED_BYTES // self.data.element_size() if self.data.is_cpu else 0
            bigger = self.data.new_empty(max(need, 2 * self.data.numel(), floor))
            bigger[: self.size] = self.data[: self.size]
            self.data = bigger
        self.data[self.size : need] = values
        self.size = need

    def view(self) -> Tensor:
        """Return the filled part (a view)."""
        return self.data[: self.size]


class KnownStore:
    """The meter's batches kept as known entries: growable buffers, one set per score dtype."""

    def __init__(self) -> None:
        self.rows = 0
        self._fields: dict[torch.dtype, list[Growable]] = {}

    def add(self, entries: Entries) -> None:
        """Append a batch's entries."""
        values = [entries.classes, entries.scores, entries.labels]
        if entries.top is not None:
            values.append(entries.top)
        if entries.scores.dtype not in self._fields:
            device = entries.scores.device
            self._fields[entries.scores.dtype] = [Growable(v.dtype, device) for v in values]
        for buffer, v in zip(self._fields[entries.scores.dtype], values, strict=True):
            buffer.extend(v)
        self.rows += entries.rows

    def parts(self) -> list[Entries]:
        """Return the stored entries, one :class:`Entries` (of views) per score dtype."""
        out = []
        for fields in self._fields.values():
            v = [f.view() for f in fields]
            out.append(Entries(v[0], v[1], v[2], v[3] if len(v) > 3 else None))
        return out

    @property
    def count(self) -> int:
        """Number of stored entries."""
        return sum(fields[0].size for fields in self._fields.values())

    @property
    def nbytes(self) -> int:
        """Bytes of the stored entries (not of the spare capacity)."""
        return sum(e.nbytes for e in self.parts())

    def clear(self) -> None:
        """Forget every entry."""
        self.rows = 0
        self._fields.clear()


def is_mostly_unknown(targets: Tensor) -> bool:
    """Whether a validated ``(B, C)`` target batch is kept as its known entries."""
    total = targets.numel()
    return total > 0 and int(torch.count_nonzero(targets >= 0)) <= SPARSE_BELOW * total


def entries_of_batch(scores: Tensor, targets: Tensor, top_k: int | None) -> Entries:
    """Return the known entries of a validated ``(B, C)`` batch, sorted by class (copies)."""
    classes, rows = torch.nonzero(targets.T >= 0, as_tuple=True)  # class-major order
    top = None
    if top_k is not None:
        # Fewer than k classes of the image score strictly higher: the rule of ``_counts``.
        s = ranked(scores)
        step = max(1, CHUNK_ELEMENTS // s.shape[1])  # bounded temporaries
        kth = torch.cat([kth_largest(s[i : i + step], top_k) for i in range(0, len(s), step)])
        top = s.T[classes, rows] >= kth[rows, 0]
    return Entries(
        classes=classes.to(torch.int32),
        scores=scores.T[classes, rows],
        labels=targets.T[classes, rows].to(torch.int8),
        top=top,
        rows=scores.shape[0],
    )


def merge_entries(parts: Sequence[Entries], dtype: torch.dtype | None = None) -> Entries | None:
    """One :class:`Entries` sorted by class, scores in ``dtype`` (default: their common one)."""
    if not parts:
        return None
    if dtype is None:
        dtype = common_dtype(p.scores.dtype for p in parts)
    classes = torch.cat([p.classes for p in parts])
    order = torch.argsort(classes, stable=True)
    tops = [p.top for p in parts if p.top is not None]
    return Entries(
        classes=classes[order],
        scores=torch.cat([p.scores.to(dtype) for p in parts])[order],
        labels=torch.cat([p.labels for p in parts])[order],
        top=torch.cat(tops)[order] if len(tops) == len(parts) else None,
        rows=sum(p.rows for p in parts),
    )


def class_range(entries: Entries, first: int, stop: int) -> slice:
    """Return the slice of class-sorted ``entries`` whose classes are in ``[first, stop)``."""
    bounds = torch.tensor([first, stop], dtype=torch.int32, device=entries.classes.device)
    lo, hi = torch.searchsorted(entries.classes, bounds).tolist()
    return slice(lo, hi)


# Ranking entries: sorted by class, then by decreasing score. For entry i, ``end`` is the last
# entry of its tie group (same class and score), ``tp`` the positives and ``known`` the entries of
# its class up to that end: TP and TP + FP of the threshold at its score.


@dataclass(frozen=True)
class Ranked:
    """Entries of ``width`` classes ranked per class, with their tie-group counts."""

    classes: Tensor  # int64, sorted
    scores: Tensor  # ranking dtype, decreasing within each class
    positive: Tensor  # bool
    group_end: Tensor  # bool: last entry of its tie group
    tp: Tensor  # int64: positives of the class scoring >= this score
    known: Tensor  # int64: entries of the class scoring >= this score
    num_pos: Tensor  # int64 (width,)


def rank_entries(classes: Tensor, scores: Tensor, labels: Tensor, width: int) -> Ranked:
    """Rank ``(n,)`` entries (``classes`` in ``[0, width)``, any order) per class."""
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(classes[order], stable=True)]
    c, v, positive = classes[order].long(), scores[order], labels[order] == 1
    n = c.numel()
    count = torch.bincount(c, minlength=width)
    num_pos = torch.bincount(c[positive], minlength=width)
    group_end = torch.ones(n, dtype=torch.bool, device=c.device)
    group_end[:-1] = (c[1:] != c[:-1]) | (v[1:] != v[:-1])
    ends = torch.nonzero(group_end).squeeze(1)
    end = ends[torch.cumsum(group_end, 0) - group_end.long()]
    positives_before = (torch.cumsum(num_pos, 0) - num_pos)[c]
    tp = torch.cumsum(positive, 0)[end] - positives_before
    known = end - (torch.cumsum(count, 0) - count)[c] + 1
    return Ranked(c, v, positive, group_end, tp, known, num_pos)


def entries_ap(classes: Tensor, scores: Tensor, labels: Tensor, width: int) -> Tensor:
    """AP of each of ``width`` classes from its known entries (NaN without a positive)."""
    r = rank_entries(classes, scores, labels, width)
    p = r.positive
    precision = r.tp[p].to(torch.float64) / r.known[p].to(torch.float64)
    return torch.bincount(r.classes[p], weights=precision, minlength=width) / r.num_pos


def entries_thresholds(classes: Tensor, scores: Tensor, labels: Tensor, width: int) -> Tensor:
    """F1-best threshold of each of ``width`` classes (the highest of equals; inf: no positive)."""
    r = rank_entries(classes, scores, labels, width)
    f1 = (2 * r.tp).to(torch.float64) / (r.known + r.num_pos[r.classes]).to(torch.float64)
    f1 = f1.masked_fill(~r.group_end | (r.tp == 0), -1.0)
    out = torch.full((width,), torch.inf, dtype=torch.float64, device=scores.device)
    if f1.numel() == 0:
        return out
    best = torch.full_like(out, -torch.inf).scatter_reduce(0, r.classes, f1, "amax")
    first = torch.full((width,), f1.numel(), dtype=torch.int64, device=scores.device)
    candidate = (f1 == best[r.classes]) & (f1 >= 0)
    index = torch.arange(f1.numel(), device=scores.device)
    first = first.scatter_reduce(0, r.classes[candidate], index[candidate], "amin")
    has = r.num_pos > 0
    out[has] = r.scores[first[has]].to(torch.float64)
    return out


def entry_counts(entries: Entries, threshold: Tensor, use_top: bool, width: int) -> Tensor:
    """``(3, width)`` counts ``Nc, Np, Ng`` of class-local entries at per-class ``threshold``."""
    # Imported here: ``_counts`` is not needed by the rest of this module.
    from ._counts import round_up

    c = entries.classes.long()
    s = ranked(entries.scores)
    predicted = s >= round_up(threshold, s.dtype).to(s.device)[c]
    if use_top:
        assert entries.top is not None
        predicted &= entries.top
    positive = entries.labels == 1
    return torch.stack(
        [
            torch.bincount(c[predicted & positive], minlength=width),
            torch.bincount(c[predicted], minlength=width),
            torch.bincount(c[positive], minlength=width),
        ]
    )
