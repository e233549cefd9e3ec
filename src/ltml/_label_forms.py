"""Label forms: every accepted form of a training label matrix, into what each part reads.

A training label matrix ``(N, C)`` (1 = positive, 0 = negative, -1 = unknown) comes as

- a dense ``numpy.ndarray`` or ``torch.Tensor``;
- a sparse matrix whose implicit entries are 0 (negative): ``scipy.sparse`` arrays and matrices of
  any format (recognised by their module, without importing scipy) and torch sparse tensors of any
  layout; the stored entries are 1 or -1 (a stored 0 is a negative too);
- a :class:`ltml.VerifiedLabels`, whose implicit entries are -1 (unknown);
- per-image class lists (``from_class_lists`` of the samplers: :class:`ClassLists`).

:func:`read_labels` checks any matrix form and returns either the dense tensor or :class:`Entries`,
the stored entries row by row (CSR) with their implicit value. From either, :func:`image_positives`
and :func:`class_positives` give the positives as image-major and class-major CSR pairs (what
counts, samplers, splits and reports read), :func:`unknown_counts` the unknown entries. Nothing here
builds an ``N x C`` array from a sparse form: memory follows the stored entries.
"""

from __future__ import annotations

import importlib
import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ._validation import (
    as_tensor,
    check_labels,
    check_matrix,
    check_sparse_labels,
    check_sparse_shape,
)
from .labels import VerifiedLabels


class Entries(NamedTuple):
    """The stored entries of a sparse ``(N, C)`` label matrix, row by row (CSR).

    Row ``i`` stores ``values[indptr[i]:indptr[i + 1]]`` at the classes ``indices[...]``
    (increasing, each once); every other entry is ``implicit``: 0 for scipy / torch sparse
    matrices (the stored values are then 1 / -1), -1 for :class:`ltml.VerifiedLabels` (1 / 0).
    """

    indptr: np.ndarray  # (N + 1,) int64
    indices: np.ndarray  # (nnz,) integers
    values: np.ndarray  # (nnz,) int8
    num_classes: int
    implicit: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, C)``."""
        return len(self.indptr) - 1, self.num_classes

    def rows(self, index: np.ndarray) -> Entries:
        """Return the rows ``index`` (int64 positions, repeats allowed), in that order."""
        starts = self.indptr[index]
        lengths = self.indptr[index + 1] - starts
        indptr = indptr_from_counts(lengths)
        at = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return Entries(indptr, self.indices[at], self.values[at], self.num_classes, self.implicit)

    def dense_rows(self, start: int, stop: int) -> np.ndarray:
        """Return rows ``start:stop`` as a dense int8 ``(stop - start, C)`` array."""
        out = np.full((stop - start, self.num_classes), self.implicit, dtype=np.int8)
        lo, hi = self.indptr[start], self.indptr[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(self.indptr[start : stop + 1]))
        out[rows, self.indices[lo:hi]] = self.values[lo:hi]
        return out


LabelForm = Tensor | Entries
"""What :func:`read_labels` returns: a checked dense tensor, or a sparse form's entries."""


def sparse_kind(x: Any) -> str | None:
    """Name the sparse form of ``x``: ``"verified"``, ``"torch"``, ``"scipy"``, or None."""
    if isinstance(x, VerifiedLabels):
        return "verified"
    if isinstance(x, Tensor) and x.layout != torch.strided:
        return "torch"
    if type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr"):
        return "scipy"
    return None


def read_labels(labels: Any, name: str, num_classes: int | None = None) -> LabelForm:
    """Check a label matrix of any form: the dense tensor as given, or a sparse form's entries."""
    if isinstance(labels, Entries):  # read already
        return labels
    kind = sparse_kind(labels)
    if kind is None:
        y = as_tensor(labels, name)
        check_matrix(y, name, num_classes)
        # Checked in numpy (no intra-op thread pool to wake); the shared check words the error.
        if y.device.type != "cpu" or not is_label_matrix(_numpy(y)):
            check_labels(y, name)
        return y
    if kind == "verified":
        indptr, indices = labels.indptr.numpy(), labels.indices.numpy()
        entries = Entries(indptr, indices, labels.values.numpy(), labels.num_classes, -1)
    else:
        indptr, indices, values, shape = (_torch_csr if kind == "torch" else _scipy_csr)(
            labels, name
        )
        check_sparse_labels(values, shape, name)
        keep = values != 0  # a stored 0 is the implicit value
        if not keep.all():
            kept = np.zeros(len(keep) + 1, dtype=np.int64)
            np.cumsum(keep, out=kept[1:])
            indptr = kept[indptr]
            indices, values = indices[keep], values[keep]
        entries = Entries(indptr, indices, values.astype(np.int8, copy=False), shape[1], 0)
    if num_classes is not None and entries.num_classes != num_classes:
        raise ValueError(
            f"`{name}` must have {num_classes} columns (num_classes), got shape {entries.shape}"
        )
    return entries


def _scipy_csr(x: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """CSR arrays of a scipy sparse array or matrix (any format), duplicates summed."""
    shape = tuple(x.shape)
    check_sparse_shape(shape, name)
    csr = x.tocsr()
    if not csr.has_canonical_format:
        csr = csr.copy()  # never change the caller's matrix
        csr.sum_duplicates()
    return csr.indptr.astype(np.int64), csr.indices, csr.data, shape


def _torch_csr(x: Tensor, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """CSR arrays of a torch sparse tensor (any layout), duplicates summed."""
    t = x.detach().cpu()
    if t.layout == torch.sparse_coo:
        t = t.coalesce()  # sorted row-major, duplicates summed
    elif t.layout != torch.sparse_csr or t.ndim != 2:
        t = _coalesced_coo(t)
    shape = tuple(t.shape)
    if t.values().ndim != 1:
        raise ValueError(
            f"`{name}` must be a sparse tensor of single entries (sparse_dim 2, dense_dim 0), "
            f"got dense_dim {t.dense_dim()} with shape {shape}"
        )
    check_sparse_shape(shape, name)
    if t.layout == torch.sparse_csr:
        crow, cols = t.crow_indices().numpy(), t.col_indices().numpy()
        # A CSR tensor is not checked for sorted columns: through COO when a row is not sorted.
        rising = cols[1:] > cols[:-1]
        rising[crow[1:-1][(crow[1:-1] > 0) & (crow[1:-1] < cols.size)] - 1] = True
        if rising.all():
            return crow.astype(np.int64), cols, _numpy(t.values()), shape
        t = _coalesced_coo(t)
    rows, cols = t.indices().numpy()
    indptr = indptr_from_counts(np.bincount(rows, minlength=shape[0]))
    return indptr, cols, _numpy(t.values()), shape


def _coalesced_coo(t: Tensor) -> Tensor:
    """Return a compressed-layout tensor as COO, sorted row-major, duplicate positions summed."""
    coo = t.to_sparse(layout=torch.sparse_coo)
    if coo.is_coalesced():
        # torch flags a CSR (or single block-row BSR) conversion coalesced, trusting an order it
        # never checked: coalescing would sort and sum nothing, so the flag goes.
        coo = torch.sparse_coo_tensor(
            coo.indices(), coo.values(), coo.shape, check_invariants=False
        )
    return coo.coalesce()


def _numpy(y: Tensor) -> np.ndarray:
    """Return a tensor's values as numpy, on the CPU (bfloat16, which numpy lacks, as float32)."""
    y = y.detach().cpu()
    return (y.float() if y.dtype == torch.bfloat16 else y).numpy()


def shape_of(form: LabelForm) -> tuple[int, int]:
    """``(N, C)`` of a form :func:`read_labels` returned."""
    return (int(form.shape[0]), int(form.shape[1]))


def image_positives(form: LabelForm) -> tuple[np.ndarray, np.ndarray]:
    """Image-major CSR ``(indptr, classes)`` of the positives: image ``i``'s, increasing."""
    if isinstance(form, Entries):
        present = form.values == 1
        seen = np.zeros(len(present) + 1, dtype=np.int32 if len(present) < 2**31 else np.int64)
        np.cumsum(present, out=seen[1:])
        return seen[form.indptr].astype(np.int64), form.indices[present].astype(np.int64)
    images, classes = dense_positives(_numpy(form))
    return indptr_from_counts(np.bincount(images, minlength=form.shape[0])), classes


def class_positives(form: LabelForm) -> tuple[np.ndarray, np.ndarray]:
    """Class-major CSR ``(indptr, images)`` of the positives: class ``k``'s, increasing."""
    image_ptr, classes = image_positives(form)
    return transpose(image_ptr, classes, shape_of(form)[1])


def unknown_counts(form: LabelForm) -> tuple[np.ndarray, np.ndarray]:
    """Count the entries equal to -1 (unknown): ``(per class (C,), per image (N,))``, int64."""
    n, c = shape_of(form)
    if not isinstance(form, Entries):
        unknown = _numpy(form) == -1
        return unknown.sum(axis=0, dtype=np.int64), unknown.sum(axis=1, dtype=np.int64)
    stored = np.diff(form.indptr)
    if form.implicit == -1:  # what is not stored is unknown
        return n - np.bincount(form.indices, minlength=c), c - stored
    at = form.values == -1
    rows = np.repeat(np.arange(n), stored)[at]
    return np.bincount(form.indices[at], minlength=c), np.bincount(rows, minlength=n)


def pair_counts(image_ptr: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the ``(C, C)`` int64 counts of images positive for both classes (diagonal: counts).

    Walks the image-major positives once per offset ``d`` (pairs of an image's labels ``d``
    apart): ``O(positives x labels per image)``, one ``C x C`` count, no ``C x N`` product.
    """
    c = num_classes
    images = np.repeat(np.arange(len(image_ptr) - 1), np.diff(image_ptr))
    keys = [classes * (c + 1)]  # the diagonal
    for d in range(1, int(np.diff(image_ptr).max(initial=0))):
        same = images[d:] == images[:-d]
        keys.append(classes[:-d][same] * c + classes[d:][same])
    counts = np.bincount(np.concatenate(keys), minlength=c * c).reshape(c, c)
    # Classes increase within an image: every pair was counted once, as (low, high). Mirror the
    # upper triangle in tiles (a whole transposed pass is ~10x slower at 9,605 classes).
    tile = 512
    for i in range(0, c, tile):
        block = counts[i : i + tile, i : i + tile]
        block += np.triu(block, 1).T
        counts[i + tile :, i : i + tile] = counts[i : i + tile, i + tile :].T
    return counts


def is_label_matrix(values: np.ndarray) -> bool:
    """Whether ``values`` holds only -1 / 0 / 1: two reductions for integers, no temporaries."""
    if values.dtype == np.bool_ or values.size == 0:
        return True
    if np.issubdtype(values.dtype, np.integer):
        return bool(values.min() >= -1 and values.max() <= 1)
    return bool(((values == 1) | (values == 0) | (values == -1)).all())


def dense_positives(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(image, class)`` of the entries equal to 1 of an ``(N, C)`` matrix, image-major.

    Label matrices are mostly zero: reading them 8 bytes at a time and looking inside the non-zero
    words only is several times faster than ``np.nonzero(values == 1)`` at 1,000,000 x 1,000, and
    allocates no ``(N, C)`` temporary.
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    # ``values`` comes from a tensor of a real dtype: 1, 2, 4 or 8 bytes per entry.
    per_word = 8 // flat.itemsize
    whole = flat.size - flat.size % per_word
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    candidates = (words[:, None] * per_word + np.arange(per_word)).reshape(-1)
    candidates = np.concatenate([candidates, np.arange(whole, flat.size)])
    index = candidates[flat[candidates] == 1]
    images, classes = np.divmod(index, max(values.shape[1], 1))
    return images.astype(np.int64), classes.astype(np.int64)


def narrowest(num_classes: int) -> type[np.unsignedinteger[Any]] | type[np.int64]:
    """Return the narrowest key type for class ids (numpy sorts them stably by radix)."""
    if num_classes <= 1 << 8:
        return np.uint8
    return np.uint16 if num_classes <= 1 << 16 else np.int64


def transpose(
    image_ptr: np.ndarray, class_ids: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class-major CSR ``(indptr, images)`` of an image-major one, images increasing per class."""
    # Stable sort by class keeps the images of each class increasing. On the narrowest unsigned
    # type numpy's stable sort is a radix sort: ~8x faster than on int64 at 3M labels.
    order = np.argsort(class_ids.astype(narrowest(num_classes)), kind="stable")
    images = np.repeat(np.arange(len(image_ptr) - 1, dtype=np.int64), np.diff(image_ptr))[order]
    return indptr_from_counts(np.bincount(class_ids, minlength=num_classes)), images


def csr_from_image_major(
    image_ptr: np.ndarray, class_ids: np.ndarray, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Class-major CSR from an image-major one (row ``i`` holds the classes of image ``i``)."""
    if image_ptr.ndim != 1 or image_ptr.size == 0 or image_ptr[0] != 0:
        raise ValueError(
            "`class_lists` as a CSR pair (indptr, indices) needs a 1-D indptr of length N + 1 "
            "starting "
            f"at 0, got shape {image_ptr.shape}"
            + (f" starting at {image_ptr[0]}" if image_ptr.size else "")
        )
    if class_ids.ndim != 1 or image_ptr[-1] != class_ids.size:
        raise ValueError(
            "`class_lists` as a CSR pair (indptr, indices) needs indptr[-1] == len(indices), "
            f"got indptr[-1] = {image_ptr[-1]} and {class_ids.size} indices"
        )
    lengths = np.diff(image_ptr)
    if lengths.size and lengths.min() < 0:
        raise ValueError(
            "`class_lists` as a CSR pair (indptr, indices) needs a non-decreasing indptr"
        )
    if class_ids.size and class_ids.min() < 0:
        raise ValueError(
            f"`class_lists` class indices must be non-negative, got {int(class_ids.min())}"
        )
    seen = int(class_ids.max()) + 1 if class_ids.size else 0
    if num_classes is None:
        num_classes = seen
    elif seen > num_classes:
        raise ValueError(
            f"`class_lists` class indices must be < num_classes={num_classes}, got {seen - 1}"
        )
    indptr, images = transpose(image_ptr, class_ids, num_classes)
    # A repeated (image, class) pair shows as equal neighbours inside one class.
    repeated = images[1:] == images[:-1]
    repeated[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < images.size)] - 1] = False
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"`class_lists` lists class {int(np.searchsorted(indptr, at, 'right') - 1)} twice "
            f"for image "
            f"{int(images[at])}; "
            "each image must list each of its positive classes once"
        )
    return indptr, images, lengths.size


def indptr_from_counts(counts: np.ndarray) -> np.ndarray:
    """Return the CSR ``indptr`` (int64, ``len(counts) + 1`` entries) of rows of these lengths."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def as_int_array(x: Any, name: str) -> np.ndarray:
    """Read integers (a tensor, an array or a sequence) into an int64 array."""
    if isinstance(x, np.ndarray | torch.Tensor):
        a = as_tensor(x, name).numpy(force=True)
    else:
        a = np.asarray(x)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


class ClassLists(NamedTuple):
    """Per-image positive classes in image-major CSR form, as ``from_class_lists`` reads them."""

    indptr: np.ndarray
    indices: np.ndarray


def class_lists_csr(class_lists: Any) -> ClassLists:
    """Read per-image class lists, or a CSR pair ``(indptr, indices)``, into image-major CSR."""
    if (
        isinstance(class_lists, tuple)
        and len(class_lists) == 2
        and all(isinstance(a, np.ndarray | torch.Tensor) for a in class_lists)
    ):
        return ClassLists(
            as_int_array(class_lists[0], "class_lists indptr"),
            as_int_array(class_lists[1], "class_lists indices"),
        )
    if isinstance(class_lists, Sequence) and not isinstance(class_lists, str | bytes | tuple):
        odd = next(
            (r for r in class_lists if not isinstance(r, Sequence | np.ndarray | torch.Tensor)
             or isinstance(r, str | bytes)),
            None,
        )  # fmt: skip
        if odd is None:
            lengths = np.fromiter((len(r) for r in class_lists), np.int64, len(class_lists))
            flat = list(itertools.chain.from_iterable(
                r.tolist() if isinstance(r, np.ndarray | torch.Tensor) else r for r in class_lists
            ))  # fmt: skip
            return ClassLists(indptr_from_counts(lengths), as_int_array(flat, "class_lists"))
        raise TypeError(
            "`class_lists` must hold one sequence of class indices per image, "
            f"got an element of type {type(odd).__name__}"
        )
    raise TypeError(
        "`class_lists` must be a list of per-image class-index lists or a tuple (indptr, indices) "
        f"of integer arrays, got {type(class_lists).__name__}"
    )


def to_class_csr(labels: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Class-major CSR and ``N`` of any label matrix form, or of ``from_class_lists``' lists."""
    if isinstance(labels, ClassLists):
        return csr_from_image_major(labels.indptr, labels.indices, num_classes)
    if isinstance(labels, Entries):  # already read (e.g. by the decoupling helpers)
        return (*class_positives(labels), labels.shape[0])
    if sparse_kind(labels) is None and not isinstance(labels, np.ndarray | torch.Tensor):
        raise TypeError(
            "`labels` must be an (N, C) numpy.ndarray, torch.Tensor (dense or sparse), "
            "scipy.sparse array or matrix, or ltml.VerifiedLabels of 0 / 1 (-1 = unknown), "
            f"got {type(labels).__name__}; convert a nested list of 0 / 1 rows with "
            "numpy.asarray, and pass per-image class-index lists to "
            "ClassAwareSampler.from_class_lists"
        )
    form = read_labels(labels, "labels", num_classes)
    return (*class_positives(form), shape_of(form)[0])


def stack_rows(blocks: Sequence[np.ndarray], num_classes: int, implicit: int) -> Entries:
    """Entries of dense int8 row blocks ``(rows, C)`` stacked in order, ``implicit`` left out."""
    lengths, indices, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], []
    for block in blocks:
        rows, cols = np.nonzero(block != implicit)  # row-major: sorted as CSR needs
        lengths.append(np.bincount(rows, minlength=block.shape[0]))
        indices.append(cols)
        values.append(block[rows, cols])
    indptr = indptr_from_counts(np.concatenate(lengths))
    return Entries(
        indptr,
        np.concatenate(indices),
        np.concatenate([np.zeros(0, np.int8), *values]),
        num_classes,
        implicit,
    )


def as_form(entries: Entries, like: Any) -> Any:
    """Return ``entries`` in the sparse form of ``like`` (its type, format, dtype and device).

    A torch BSR / BSC ``like`` gives its block size, or where that does not divide the shape
    (other rows than ``like``'s), the greatest common divisor of the two per dimension. The
    implicit value must be ``like``'s: 0 for scipy / torch sparse, -1 for VerifiedLabels.
    """
    n, c = entries.shape
    kind = sparse_kind(like)
    if kind == "verified":
        return VerifiedLabels(entries.indptr, entries.indices, entries.values, c)
    if kind == "torch":
        values = torch.from_numpy(entries.values).to(like.dtype)
        rows = np.repeat(np.arange(n), np.diff(entries.indptr))
        index = torch.from_numpy(np.stack([rows, entries.indices.astype(np.int64)]))
        with warnings.catch_warnings():  # torch says its sparse CSR support is in beta, once
            warnings.filterwarnings("ignore", "Sparse .* support is in beta", UserWarning)
            t = torch.sparse_coo_tensor(
                index, values, (n, c), is_coalesced=True, check_invariants=False
            )  # sorted, in range and each position once by construction
            if like.layout in (torch.sparse_bsr, torch.sparse_bsc):
                blocks = like.values().shape[1:3]  # where they do not divide (n, c): the gcd
                t = t.to_sparse(layout=like.layout, blocksize=tuple(map(math.gcd, blocks, (n, c))))
            elif like.layout != torch.sparse_coo:
                t = t.to_sparse(layout=like.layout)
        return t.to(like.device)
    sparse = importlib.import_module("scipy.sparse")  # installed: `like` is one of its types
    array = isinstance(like, getattr(sparse, "sparray", ()))  # scipy >= 1.11 has both kinds
    build = sparse.csr_array if array else sparse.csr_matrix
    data = entries.values.astype(like.dtype)
    return build((data, entries.indices, entries.indptr), shape=(n, c)).asformat(like.format)
