"""Contracts of sparse label matrices: compressed sparse rows (CSR)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .arrays import DTYPES, as_tensor, labels_contract
from .scalars import check_int, described, is_int


def as_positions(x: Any, name: str, size: int, what: str = "row indices") -> Tensor:
    """Return integers in ``[0, size)`` as a 1-D int32 or int64 tensor; repeats allowed.

    From a 1-D integer tensor or array (int32 and int64 kept as they are, without a copy:
    web-scale index arrays are large), or a sequence of ints. Booleans (a mask would silently
    become the positions 0 and 1), floats and strings are refused.
    """
    if isinstance(x, Tensor | np.ndarray):
        t = as_tensor(x, name)
        if t.ndim != 1 or t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(
                f"`{name}` must be a 1-D sequence of integer {what}, "
                f"got shape {tuple(t.shape)} of dtype {t.dtype}"
            )
        if t.dtype not in (torch.int32, torch.int64):
            t = t.to(torch.int64)
    elif isinstance(x, Sequence) and not isinstance(x, str | bytes):
        odd = next((v for v in x if not is_int(v)), None)
        if odd is not None:
            raise TypeError(
                f"`{name}` must be a sequence of integer {what}, got an element {described(odd)}"
            )
        t = torch.tensor([int(v) for v in x], dtype=torch.int64)
    else:
        raise TypeError(f"`{name}` must be a sequence of integer {what}, got {described(x)}")
    if t.numel() and not (int(t.min()) >= 0 and int(t.max()) < size):
        bad = t[(t < 0) | (t >= size)][:5].tolist()
        raise ValueError(f"`{name}` must hold {what} in [0, {size}), got {bad}")
    return t


def check_csr(indptr: Tensor, indices: Tensor) -> None:
    """Check compressed sparse rows (CSR), 1-D integer tensors (see :func:`as_positions`).

    ``indptr`` runs from 0 to ``len(indices)`` without decreasing, and each row's
    ``indices[indptr[i]:indptr[i + 1]]`` strictly increase (sorted, each column once).
    """
    nnz = indices.numel()
    if indptr.numel() == 0 or int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
        ends = tuple(indptr[[0, -1]].tolist()) if indptr.numel() else "empty"
        raise ValueError(
            f"`indptr` must run from 0 to len(`indices`) = {nnz} (N + 1 row offsets), got {ends}"
        )
    step = indptr.diff()
    if bool((step < 0).any()):
        row = int(torch.nonzero(step < 0)[0])
        raise ValueError(f"`indptr` must never decrease, got a decrease after row {row}")
    rising = indices.diff() > 0
    rising[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < nnz)] - 1] = True  # row boundaries
    if not bool(rising.all()):
        at = int(torch.nonzero(~rising)[0]) + 1
        row = int(torch.searchsorted(indptr, at, right=True)) - 1
        raise ValueError(
            f"`indices` must strictly increase within each row (sorted, each class once), "
            f"row {row} is not"
        )


def as_shape(x: Any, name: str) -> tuple[int, int]:
    """Return the shape ``(N, C)`` of a label matrix: ``N >= 0`` rows, ``C >= 1`` classes.

    At most 2**62 entries: an entry's position ``row * C + class`` is an int64 key, doubled
    while sorting.
    """
    if not (isinstance(x, Sequence) and not isinstance(x, str | bytes) and len(x) == 2):
        raise TypeError(f"`{name}` must be a pair (N, C) of integers, got {described(x)}")
    n, c = check_int(x[0], f"{name}[0]", low=0), check_int(x[1], f"{name}[1]")
    if n * c > 2**62:
        raise ValueError(f"`{name}` must have at most 2**62 entries (N x C), got {n} x {c}")
    return n, c


def check_signed_dtype(dtype: Any, name: str) -> torch.dtype:
    """Check for a real torch dtype that holds -1 (unknown): a signed integer or a float."""
    if not (isinstance(dtype, torch.dtype) and dtype in DTYPES and dtype.is_signed):
        raise TypeError(
            f"`{name}` must be a signed integer or floating torch dtype (to hold -1), "
            f"got {described(dtype)}"
        )
    return dtype


def check_sparse_shape(shape: tuple[int, ...], name: str) -> None:
    """Check the shape of a sparse label matrix: 2-D, ``C >= 1``."""
    if len(shape) != 2:
        raise ValueError(
            f"`{name}` must be 2-D of shape (N, C), got {len(shape)}-D with shape {tuple(shape)}"
        )
    if shape[1] == 0:
        raise ValueError(
            f"`{name}` must have at least one column (class), got shape {tuple(shape)}"
        )


def check_sparse_labels(values: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Check the stored entries of a sparse label matrix: 2-D, ``C >= 1``, values 1 / 0 / -1.

    ``values`` are the entries as stored (after the sparse form summed any duplicate
    positions, as scipy and torch do): any integer, bool or float dtype holding -1, 0 or 1.
    """
    check_sparse_shape(shape, name)
    if values.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must hold real numbers (bool, int or float), got dtype {values.dtype}"
        )
    if values.dtype.kind == "b" or values.size == 0:
        return
    if values.dtype.kind in "iu" and values.min() >= -1 and values.max() <= 1:
        return
    bad = (values != 0) & (values != 1) & (values != -1)  # NaN is bad too
    if bad.any():
        seen = np.unique(values[bad])
        shown = ", ".join(f"{v:g}" for v in seen[:5].tolist())
        raise ValueError(
            f"{labels_contract(name)}, got {shown}"
            + (" (and more)" if seen.size > 5 else "")
            + " among its stored entries (a position stored twice counts their sum)"
        )
