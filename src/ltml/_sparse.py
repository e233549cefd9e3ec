"""Sorting keys into compressed sparse rows: shared by :mod:`ltml.labels` and the readers.

A verdict is a (row, class) pair with a value, 1 (present) or 0 (absent). The pair is kept as one
int64 key, ``row * C + class``, so that sorting keys sorts the pairs row by row, class by class.
Rows come from ids (e.g. OpenImages' ImageIDs, byte strings) by :func:`index_ids`. Sorts are
stable (timsort, adaptive) where the data come nearly sorted, as label files do.
"""

from __future__ import annotations

import numpy as np


def merge_verdicts(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sort verdicts by key, one per key: ``(keys, values, conflicts)``, each sorted by key.

    A verdict given twice is one verdict. A key given both values is left out of ``keys`` and
    returned in ``conflicts``: the caller decides what two contradicting sources mean.
    """
    both = keys.astype(np.int64) * 2 + values.astype(np.int64)  # key and value sort together
    # Timsort is adaptive: near-linear on label files, which come sorted or grouped by image.
    both.sort(kind="stable")
    both = both[_firsts(both)]
    keys, values = both >> 1, (both & 1).astype(np.int8)
    clash = keys[1:] == keys[:-1]  # the same key with 0, then 1
    keep = np.ones(len(keys), dtype=bool)
    keep[1:][clash] = False
    keep[:-1][clash] = False
    return keys[keep], values[keep], keys[1:][clash]


def row_offsets(rows: np.ndarray, num_rows: int) -> np.ndarray:
    """Return the ``(num_rows + 1,)`` int64 offsets (CSR ``indptr``) of entries sorted by row."""
    indptr = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_rows), out=indptr[1:])
    return indptr


def is_member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in ``sorted_keys`` (sorted): binary search, no hash table."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[at] == keys)


def unique(keys: np.ndarray) -> np.ndarray:
    """Return the distinct keys, sorted (a stable sort: near-linear on nearly sorted keys)."""
    keys = np.sort(keys, kind="stable")
    return np.asarray(keys[_firsts(keys)])


def index_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted distinct ids (any sortable dtype) and the position of each among them."""
    change = ids[1:] != ids[:-1]
    inverse = np.zeros(len(ids), dtype=np.int64)
    np.cumsum(change, out=inverse[1:])
    heads = ids[np.concatenate(([True], change))] if len(ids) else ids
    if (heads[1:] > heads[:-1]).all():  # a file sorted by ImageID, as the official ones: one pass
        return heads, inverse
    order = np.argsort(heads)
    heads = heads[order]
    first = _firsts(heads)
    rank = np.empty(len(heads), dtype=np.int64)
    rank[order] = np.cumsum(first) - 1
    return heads[first], rank[inverse]


def merge_ids(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two sorted arrays of distinct ids: ``(merged, position of a's, position of b's)``."""
    dtype = np.promote_types(a.dtype, b.dtype)
    a, b = a.astype(dtype), b.astype(dtype)
    at, found = np.searchsorted(a, b), is_member(a, b)
    new_at = at[~found]  # b's ids not in a go before a[new_at]
    merged = np.insert(a, new_at, b[~found])
    a_to = np.arange(len(a)) + np.searchsorted(new_at, np.arange(len(a)), side="right")
    b_to = np.empty(len(b), dtype=np.int64)
    b_to[found] = a_to[at[found]]
    b_to[~found] = new_at + np.arange(len(new_at))
    return merged, a_to, b_to


def _firsts(sorted_values: np.ndarray) -> np.ndarray:
    """Mask of the first of each run of equal values in a sorted array."""
    first = np.ones(len(sorted_values), dtype=bool)
    first[1:] = sorted_values[1:] != sorted_values[:-1]
    return first
