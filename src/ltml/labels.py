"""Sparse partial labels: only the verified entries of an ``(N, C)`` label matrix are stored.

At web scale (OpenImages: 9M images x 9,605 classes, a few verified labels per image) a dense
matrix of 1 / 0 / -1 does not fit in memory, and a sparse matrix of scipy or torch cannot stand
in for it: there, an entry that is not stored is 0, *absent*. In :class:`VerifiedLabels` an entry
that is not stored is **unknown** (-1): both verdicts, present (1) and absent (0), are stored.
Being its own type, it is never mistaken for a scipy / torch sparse matrix.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._sparse import merge_verdicts, row_offsets
from ._validation import (
    as_labels,
    as_positions,
    as_shape,
    as_tensor,
    check_choice,
    check_csr,
    check_int,
    check_labels,
    check_same_shape,
    check_signed_dtype,
)

CONFLICTS = ("error", "unknown")


@dataclasses.dataclass(frozen=True, eq=False, repr=False, init=False)
class VerifiedLabels:
    r"""An ``(N, C)`` label matrix that stores verdicts only: every other entry is unknown (-1).

    Compressed sparse rows (CSR): the verdicts of row ``i`` are at ``indptr[i]:indptr[i + 1]`` of
    ``indices`` (their classes, increasing) and ``values`` (1 = verified present, 0 = verified
    absent). At 9M images with 8.3 verdicts each this takes 0.45 GB, where the dense int8 matrix
    would take 86 GB. Read-only: operations return new containers.

    Parameters
    ----------
    indptr : Tensor, ndarray or sequence of int, shape (N + 1,)
        Row offsets into ``indices``: from 0 to ``nnz``, never decreasing. Stored as int64.
    indices : Tensor, ndarray or sequence of int, shape (nnz,)
        Class of each verdict, in ``[0, num_classes)``, strictly increasing within a row (sorted,
        each class once: :meth:`from_triplets` sorts and merges). Stored as int32.
    values : Tensor, ndarray or sequence of int, shape (nnz,)
        Each verdict: 1 or 0 (any integer, bool or float dtype holding them). Stored as int8.
    num_classes : int
        ``C``.

    Attributes
    ----------
    indptr, indices, values : Tensor
        The CSR arrays: int64, int32, int8, on the CPU (treat them as read-only).
    num_classes : int
        ``C``.

    Raises
    ------
    TypeError
        An array that is not 1-D of integers (``values``: of 0 / 1), a ``num_classes`` that is
        not an integer.
    ValueError
        Offsets that do not run from 0 to ``nnz`` or decrease, a class out of range or repeated
        (or unsorted) within a row, a value other than 0 / 1, ``indices`` and ``values`` of
        different lengths.

    Examples
    --------
    >>> import torch
    >>> from ltml import VerifiedLabels
    >>> y = VerifiedLabels(indptr=[0, 2, 2, 3], indices=[0, 3, 1], values=[1, 0, 1], num_classes=4)
    >>> y
    VerifiedLabels(shape=(3, 4), nnz=3, positives=2, known=25.000%)
    >>> y.to_dense()
    tensor([[ 1, -1, -1,  0],
            [-1, -1, -1, -1],
            [-1,  1, -1, -1]], dtype=torch.int8)
    >>> y[0]
    tensor([ 1, -1, -1,  0], dtype=torch.int8)
    >>> y.rows([2, 0]).to_dense().tolist()
    [[-1, 1, -1, -1], [1, -1, -1, 0]]
    >>> indptr, indices = y.positives()  # what counts and samplers consume
    >>> indptr.tolist(), indices.tolist()
    ([0, 1, 1, 2], [0, 1])
    >>> same = VerifiedLabels.from_dense(y.to_dense())
    >>> torch.equal(same.to_dense(), y.to_dense())
    True
    """

    indptr: Tensor
    indices: Tensor
    values: Tensor
    num_classes: int

    def __init__(self, indptr: Any, indices: Any, values: Any, num_classes: int) -> None:
        num_classes = check_int(num_classes, "num_classes")
        cols = as_positions(indices, "indices", num_classes, "class indices").cpu()
        offsets = as_positions(indptr, "indptr", cols.numel() + 1, "offsets into `indices`").cpu()
        verdicts = _as_verdicts(values)
        check_same_shape(cols, verdicts, "indices", "values")
        check_csr(offsets, cols)
        self._set(offsets.long(), cols.to(torch.int32), verdicts.to(torch.int8), num_classes)

    def _set(self, indptr: Tensor, indices: Tensor, values: Tensor, num_classes: int) -> None:
        for name, value in zip(
            ("indptr", "indices", "values", "num_classes"),
            (indptr, indices, values, num_classes),
            strict=True,
        ):
            object.__setattr__(self, name, value)  # frozen: set once, here

    @classmethod
    def _trusted(cls, indptr: Tensor, indices: Tensor, values: Tensor, c: int) -> VerifiedLabels:
        """Wrap arrays valid by construction (unchecked: they can be large)."""
        out = cls.__new__(cls)
        out._set(indptr, indices.to(torch.int32), values.to(torch.int8), c)
        return out

    # ------------------------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, C)``."""
        return self.indptr.numel() - 1, self.num_classes

    @property
    def nnz(self) -> int:
        """The number of verdicts (known entries)."""
        return self.indices.numel()

    def __len__(self) -> int:
        return self.indptr.numel() - 1

    def __repr__(self) -> str:
        n, c = self.shape
        known = self.nnz / (n * c) if n else 0.0
        positives = int((self.values == 1).sum())
        return (
            f"VerifiedLabels(shape=({n}, {c}), nnz={self.nnz}, positives={positives}, "
            f"known={known:.3%})"
        )

    # ------------------------------------------------------------------------------- reading

    def to_dense(self, dtype: torch.dtype = torch.int8) -> Tensor:
        """Return the ``(N, C)`` matrix of 1 / 0 / -1 (unknown), of ``dtype`` (signed)."""
        dtype = check_signed_dtype(dtype, "dtype")
        n, c = self.shape
        out = torch.full((n, c), -1, dtype=dtype)
        rows = torch.repeat_interleave(torch.arange(n), self.indptr.diff())
        out[rows, self.indices.long()] = self.values.to(dtype)
        return out

    def row(self, i: int) -> Tensor:
        """Return row ``i`` (negative: from the end) as a ``(C,)`` int8 tensor of 1 / 0 / -1."""
        n, k = len(self), check_int(i, "i", low=-(2**63))
        if not -n <= k < n:
            raise IndexError(f"row {k} is out of range for {n} rows")
        k %= n
        start, stop = int(self.indptr[k]), int(self.indptr[k + 1])
        out = torch.full((self.num_classes,), -1, dtype=torch.int8)
        out[self.indices[start:stop].long()] = self.values[start:stop]
        return out

    def __getitem__(self, i: int) -> Tensor:
        """Row ``i`` as :meth:`row` does; :meth:`rows` selects several."""
        return self.row(i)

    def rows(self, index: Any) -> VerifiedLabels:
        """Return the rows ``index`` (1-D integer positions, repeats allowed), in that order."""
        idx = as_positions(index, "index", len(self)).long()
        starts = self.indptr[idx]
        lengths = self.indptr[idx + 1] - starts
        indptr = torch.zeros(idx.numel() + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=indptr[1:])
        # Position of each kept verdict: its row's start, then 0, 1, ... within the row.
        at = torch.repeat_interleave(starts - indptr[:-1], lengths) + torch.arange(int(indptr[-1]))
        return VerifiedLabels._trusted(indptr, self.indices[at], self.values[at], self.num_classes)

    def positives(self) -> tuple[Tensor, Tensor]:
        """Return the CSR ``(indptr, indices)`` of the verified-present entries alone.

        The positive classes of row ``i`` are ``indices[indptr[i]:indptr[i + 1]]``: what class
        counts and class-aware samplers read (absent and unknown are both "not positive" there).
        """
        present = self.values == 1
        seen = torch.zeros(self.nnz + 1, dtype=torch.int64)
        torch.cumsum(present, 0, out=seen[1:])
        return seen[self.indptr], self.indices[present]

    # ------------------------------------------------------------------------- constructors

    @classmethod
    def from_dense(cls, labels: Any) -> VerifiedLabels:
        """Keep the 1 and 0 entries of an ``(N, C)`` matrix of 1 / 0 / -1 (array or tensor).

        Examples
        --------
        >>> import numpy as np
        >>> from ltml import VerifiedLabels
        >>> VerifiedLabels.from_dense(np.array([[1, -1, 0], [-1, -1, 1]]))
        VerifiedLabels(shape=(2, 3), nnz=3, positives=2, known=50.000%)
        """
        y = as_labels(labels, "labels").cpu()
        known = y >= 0
        rows, cols = torch.nonzero(known, as_tuple=True)  # row-major: sorted as CSR needs
        indptr = torch.zeros(y.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(known.sum(1), 0, out=indptr[1:])
        return cls._trusted(indptr, cols, y[rows, cols], y.shape[1])

    @classmethod
    def from_triplets(
        cls, rows: Any, cols: Any, values: Any, shape: Any, *, conflicts: str = "error"
    ) -> VerifiedLabels:
        """Build from verdicts in any order: ``labels[rows[k], cols[k]] = values[k]``.

        Parameters
        ----------
        rows, cols : Tensor, ndarray or sequence of int, shape (K,)
            Row (image) and class of each verdict.
        values : Tensor, ndarray or sequence of int, shape (K,)
            1 (present) or 0 (absent).
        shape : (int, int)
            ``(N, C)``.
        conflicts : {"error", "unknown"}
            A pair given both 1 and 0: a ``ValueError`` naming it, or the pair becomes unknown
            (left out). A pair given the same value twice is one verdict either way.

        Examples
        --------
        >>> from ltml import VerifiedLabels
        >>> y = VerifiedLabels.from_triplets([1, 0, 1, 1], [2, 0, 2, 0], [1, 0, 1, 1], (2, 3))
        >>> y.to_dense().tolist()
        [[0, -1, -1], [1, -1, 1]]
        >>> VerifiedLabels.from_triplets([0, 0], [1, 1], [1, 0], (1, 3), conflicts="unknown").nnz
        0
        """
        n, c = as_shape(shape, "shape")
        check_choice(conflicts, "conflicts", CONFLICTS)
        r = as_positions(rows, "rows", n).cpu()
        k = as_positions(cols, "cols", c, "class indices").cpu()
        v = _as_verdicts(values)
        check_same_shape(r, k, "rows", "cols")
        check_same_shape(r, v, "rows", "values")
        keys = r.numpy().astype(np.int64) * c + k.numpy()
        keys, verdicts, clashes = merge_verdicts(keys, v.to(torch.int8).numpy())
        if len(clashes) and conflicts == "error":
            row, col = divmod(int(clashes[0]), c)
            raise ValueError(
                f"`values`: {len(clashes)} (row, class) pair(s) are given both 1 and 0, e.g. "
                f"row {row}, class {col}; pass conflicts='unknown' to leave them unknown"
            )
        indptr = torch.from_numpy(row_offsets(keys // c, n))
        return cls._trusted(indptr, torch.from_numpy(keys % c), torch.from_numpy(verdicts), c)


def _as_verdicts(values: Any) -> Tensor:
    """``values`` as a tensor of 0 / 1: a tensor or array of any real dtype, or a sequence."""
    if isinstance(values, Tensor | np.ndarray):
        v = as_tensor(values, "values").cpu()
        check_labels(v, "values", allow_unknown=False)
        return v
    return as_positions(values, "values", 2, "verdicts (1 present, 0 absent)")
