"""Label forms: a dense matrix or per-image class lists, into per-class positive lists (CSR).

Every sampler (and the stratified split) reads the positives of each class as a class-major CSR
pair ``(indptr, images)``: the images positive for class ``k`` are
``images[indptr[k]:indptr[k + 1]]``, in increasing order. :func:`to_class_csr` builds it from any
accepted form; memory follows the number of positive labels, not ``N * C``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from .._validation import as_tensor, check_labels, check_matrix


def csr_from_dense(labels: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Class-major CSR of the known positives of a dense ``(N, C)`` label matrix."""
    y = as_tensor(labels, "labels")
    check_matrix(y, "labels", num_classes)
    values = y.detach().cpu().numpy()
    # Checked in numpy, as the rest of the construction (no intra-op thread pool to wake); the
    # shared check only words the error.
    if not is_label_matrix(values):
        check_labels(y, "labels")
    images, classes = dense_positives(values)
    # A stable sort by class keeps each class's images increasing (radix sort on narrow keys).
    order = np.argsort(classes.astype(narrowest(values.shape[1])), kind="stable")
    counts = np.bincount(classes, minlength=values.shape[1])
    return indptr_from_counts(counts), images[order], values.shape[0]


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
    # Stable sort by class keeps the images of each class increasing. On the narrowest unsigned
    # type numpy's stable sort is a radix sort: ~8x faster than on int64 at 3M labels.
    order = np.argsort(class_ids.astype(narrowest(num_classes)), kind="stable")
    images = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)[order]
    indptr = indptr_from_counts(np.bincount(class_ids, minlength=num_classes))
    # A repeated (image, class) pair shows as equal neighbours inside one class.
    repeated = images[1:] == images[:-1]
    repeated[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < images.size)] - 1] = False
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"`class_lists` lists class {int(class_ids[order[at]])} twice for image "
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
    """Class-major CSR of a dense label matrix, or of the class lists of ``from_class_lists``."""
    if isinstance(labels, ClassLists):
        return csr_from_image_major(labels.indptr, labels.indices, num_classes)
    if isinstance(labels, np.ndarray | torch.Tensor):
        return csr_from_dense(labels, num_classes)
    raise TypeError(
        "`labels` must be an (N, C) numpy.ndarray or torch.Tensor of 0 / 1 (-1 = unknown), "
        f"got {type(labels).__name__}; convert a nested list of 0 / 1 rows with numpy.asarray, "
        "and pass per-image class-index lists to ClassAwareSampler.from_class_lists"
    )
