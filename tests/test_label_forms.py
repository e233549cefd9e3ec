"""Every accepted form of a label matrix reads as its dense matrix, and goes back to its form.

The oracle is the dense ``(N, C)`` matrix of 1 / 0 / -1 each form is built from: positives,
unknowns and co-occurrences read from any scipy format, torch layout, dtype or ``VerifiedLabels``
must be exactly what literal numpy gives on the dense matrix, and ``as_form`` must rebuild the
caller's type, format, dtype, layout, block size and shape.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ltml import VerifiedLabels
from ltml._label_forms import (
    Entries,
    as_form,
    class_positives,
    image_positives,
    pair_counts,
    read_labels,
    sparse_kind,
    stack_rows,
    unknown_counts,
)

# Row 0 and the last row are empty; the last column holds no positive and no unknown (scipy /
# torch) or nothing but unknowns (VERIFIED, for VerifiedLabels, whose implicit value is -1): a
# count that loses its length at an empty last row / class shows.
DENSE = np.array(
    [
        [0, 0, 0, 0, 0],
        [1, 0, -1, 1, 0],
        [0, 1, 1, 0, 0],
        [-1, 0, 0, 1, 0],
        [1, 1, 0, -1, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.int8,
)
VERIFIED = DENSE.copy()
VERIFIED[:, -1] = -1


def _unsorted_csr(dense: np.ndarray, last_pair: bool = False) -> torch.Tensor:
    """A torch CSR tensor of ``dense`` with each row's columns reversed (torch does not check).

    With ``last_pair``, only the last two stored columns are swapped: every other row boundary
    and neighbour rises, and the first stored column is the smallest.
    """
    crow, cols, vals = [0], [], []
    for row in dense:
        at = np.flatnonzero(row)
        cols += (at if last_pair else at[::-1]).tolist()
        vals += row[at if last_pair else at[::-1]].tolist()
        crow.append(len(cols))
    if last_pair:
        cols[-2:], vals[-2:] = cols[:-3:-1], vals[:-3:-1]
    return torch.sparse_csr_tensor(
        torch.tensor(crow),
        torch.tensor(cols, dtype=torch.int64),
        torch.tensor(vals, dtype=torch.float32),
        dense.shape,
    )


def _split_csr(dense: np.ndarray) -> torch.Tensor:
    """A torch CSR tensor storing each entry as +v at its column plus a stored 0 and a (1, -1) pair.

    Duplicate positions in a row (equal neighbouring columns) must be summed, as COO would.
    """
    crow, cols, vals = [0], [], []
    for row in dense:
        for k in np.flatnonzero(row):
            cols += [k, k, k]
            vals += [1.0, -1.0, float(row[k])]
        crow.append(len(cols))
    return torch.sparse_csr_tensor(
        torch.tensor(crow), torch.tensor(cols), torch.tensor(vals), dense.shape
    )


def _noncanonical_scipy(dense: np.ndarray) -> sp.csr_matrix:
    """A scipy CSR matrix with unsorted columns, duplicate positions and stored zeros."""
    indptr, indices, data = [0], [], []
    for row in dense:
        at = np.flatnonzero(row)[::-1]
        for k in at:
            indices += [k, k]
            data += [int(row[k]) * 2, -int(row[k])]  # sums to row[k]
        indices.append(0)
        data.append(0)  # a stored zero: a negative, or nothing where column 0 holds a label
        indptr.append(len(indices))
    m = sp.csr_matrix((data, indices, indptr), shape=dense.shape, dtype=np.int16)
    assert not m.has_canonical_format
    return m


FORMS: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy int8": lambda d: d,
    "numpy float16": lambda d: d.astype(np.float16),
    "numpy float32": lambda d: d.astype(np.float32),
    "numpy int32": lambda d: d.astype(np.int32),
    "torch int64": lambda d: torch.from_numpy(d).long(),
    "torch bfloat16": lambda d: torch.from_numpy(d).to(torch.bfloat16),
    "torch coo": lambda d: torch.from_numpy(d).float().to_sparse(),
    "torch coo bfloat16": lambda d: torch.from_numpy(d).to(torch.bfloat16).to_sparse(),
    "torch csr": lambda d: torch.from_numpy(d).float().to_sparse_csr(),
    "torch csr unsorted": _unsorted_csr,
    "torch csr last pair unsorted": lambda d: _unsorted_csr(d, last_pair=True),
    "torch csr duplicates": _split_csr,
    "torch csc": lambda d: torch.from_numpy(d).float().to_sparse_csc(),
    "torch bsr": lambda d: torch.from_numpy(d).double().to_sparse_bsr((3, 1)),
    "torch bsc": lambda d: torch.from_numpy(d).to(torch.int8).to_sparse_bsc((2, 5)),
    "scipy csr": sp.csr_matrix,
    "scipy csc array": sp.csc_array,
    "scipy coo": sp.coo_matrix,
    "scipy lil": sp.lil_matrix,
    "scipy noncanonical": _noncanonical_scipy,
}


def _forms(dense: np.ndarray) -> Iterator[tuple[str, Any]]:
    for name, build in FORMS.items():
        yield name, build(dense)
    yield "verified", VerifiedLabels.from_dense(torch.from_numpy(dense))


def _expected(dense: np.ndarray) -> dict[str, np.ndarray]:
    """Literal numpy on the dense matrix."""
    classes = np.nonzero(dense == 1)[1]  # row-major: classes increase within an image
    class_images = np.nonzero(dense.T == 1)[1]  # column-major: images increase within a class
    return {
        "image_ptr": np.r_[0, np.cumsum((dense == 1).sum(axis=1))],
        "classes": classes,
        "class_ptr": np.r_[0, np.cumsum((dense == 1).sum(axis=0))],
        "images": class_images,
        "unknown_per_class": (dense == -1).sum(axis=0),
        "unknown_per_image": (dense == -1).sum(axis=1),
    }


def _equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want, strict=False)
    assert got.shape == want.shape


@pytest.mark.parametrize("dense", [DENSE, VERIFIED], ids=["last-class-empty", "last-class-unknown"])
def test_every_form_gives_the_dense_positives_and_unknowns(dense: np.ndarray) -> None:
    want = _expected(dense)
    for name, labels in _forms(dense):
        form = read_labels(labels, "labels")
        image_ptr, classes = image_positives(form)
        class_ptr, images = class_positives(form)
        per_class, per_image = unknown_counts(form)
        for got, key in [
            (image_ptr, "image_ptr"),
            (classes, "classes"),
            (class_ptr, "class_ptr"),
            (images, "images"),
            (per_class, "unknown_per_class"),
            (per_image, "unknown_per_image"),
        ]:
            try:
                _equal(got, want[key])
            except AssertionError as e:
                raise AssertionError(f"{name}: {key}") from e


def test_sparse_forms_read_into_canonical_entries() -> None:
    """Entries as documented: int64 indptr, each row's classes increasing, int8 values of 1 / -1
    (the implicit 0 never stored) or 1 / 0 for VerifiedLabels, and ``dense_rows`` the dense rows."""
    for name, labels in _forms(DENSE):
        form = read_labels(labels, "labels")
        if not isinstance(form, Entries):
            continue
        implicit = -1 if name == "verified" else 0
        assert form.implicit == implicit, name
        assert form.indptr.dtype == np.int64, name
        assert form.values.dtype == np.int8, name
        assert not (form.values == implicit).any(), name
        for i in range(form.shape[0]):
            assert (np.diff(form.indices[form.indptr[i] : form.indptr[i + 1]]) > 0).all(), name
        rows = form.dense_rows(1, 5)
        assert rows.dtype == np.int8
        np.testing.assert_array_equal(rows, DENSE[1:5], err_msg=name)


def test_reading_leaves_the_callers_matrix_as_it_was() -> None:
    m = _noncanonical_scipy(DENSE)
    before = (m.indptr.copy(), m.indices.copy(), m.data.copy())
    read_labels(m, "labels")
    for a, b in zip((m.indptr, m.indices, m.data), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "labels",
    [
        torch.tensor([[1.0 + 1e-12, 0.0]], dtype=torch.float64),
        np.array([[0.0, -1.0 - 1e-12]]),
        torch.tensor([[1.0 + 1e-12, 0.0]], dtype=torch.float64).to_sparse(),
    ],
    ids=["torch float64", "numpy float64", "torch coo float64"],
)
def test_values_near_a_label_are_not_rounded_to_it(labels: Any) -> None:
    with pytest.raises(ValueError, match="labels"):
        read_labels(labels, "labels")


@pytest.mark.parametrize(
    "labels",
    [
        torch.ones(2, 2, 3).to_sparse(),
        torch.ones(2, 2, 3).to_sparse_csr(),  # batched CSR: 2 x (2, 3)
        torch.ones(3).to_sparse(),
        sp.coo_array(np.ones(3)),
    ],
    ids=["torch coo 3-D", "torch csr 3-D", "torch coo 1-D", "scipy coo 1-D"],
)
def test_sparse_forms_of_other_dimensions_are_refused(labels: Any) -> None:
    with pytest.raises(ValueError, match=r"`y` must be 2-D of shape \(N, C\), got \d-D"):
        read_labels(labels, "y")


def test_sparse_kind_names_each_form_and_only_scipy_by_module() -> None:
    assert sparse_kind(sp.csr_matrix(DENSE)) == "scipy"
    assert sparse_kind(sp.coo_array(DENSE)) == "scipy"
    assert sparse_kind(torch.from_numpy(DENSE).to_sparse_csc()) == "torch"
    assert sparse_kind(VerifiedLabels.from_dense(torch.from_numpy(DENSE))) == "verified"
    assert sparse_kind(torch.from_numpy(DENSE)) is None

    class LooksSparse:  # has scipy's method, not its module
        shape = DENSE.shape

        def tocsr(self) -> sp.csr_matrix:
            return sp.csr_matrix(DENSE)

    assert sparse_kind(LooksSparse()) is None
    with pytest.raises(TypeError, match="labels"):
        read_labels(LooksSparse(), "labels")


LIKES: dict[str, Callable[[np.ndarray], Any]] = {
    "torch coo": lambda d: torch.from_numpy(d).float().to_sparse(),
    "torch csr": lambda d: torch.from_numpy(d).to(torch.int16).to_sparse_csr(),
    "torch csc": lambda d: torch.from_numpy(d).double().to_sparse_csc(),
    "torch bsr": lambda d: torch.from_numpy(d).float().to_sparse_bsr((3, 1)),
    "torch bsc": lambda d: torch.from_numpy(d).to(torch.bfloat16).to_sparse_bsc((2, 5)),
    "scipy csc": lambda d: sp.csc_matrix(d.astype(np.float32)),
    "scipy coo array": lambda d: sp.coo_array(d.astype(np.int64)),
    "verified": lambda d: VerifiedLabels.from_dense(torch.from_numpy(d)),
}


@pytest.mark.parametrize("rows", [[4, 1, 1, 0, 2, 5], [4, 1, 1, 0, 5]], ids=["6 rows", "5 rows"])
@pytest.mark.parametrize("kind", list(LIKES))
def test_as_form_rebuilds_the_callers_form(kind: str, rows: list[int]) -> None:
    # The rows taken back hold an empty last row and an empty last column: the shape is the
    # form's, not what the stored entries span. A block size that does not divide 5 rows
    # becomes its gcd with them (1).
    like = LIKES[kind](DENSE)
    index = np.array(rows)
    out = as_form(read_labels(like, "labels").rows(index), like)
    assert type(out) is type(like)
    assert tuple(out.shape) == (len(rows), 5)
    if isinstance(like, torch.Tensor):
        assert (out.layout, out.dtype, out.device) == (like.layout, like.dtype, like.device)
        if like.layout in (torch.sparse_bsr, torch.sparse_bsc):
            blocks = like.values().shape[1:]
            want = tuple(math.gcd(b, size) for b, size in zip(blocks, out.shape, strict=True))
            assert tuple(out.values().shape[1:]) == want
            assert len(rows) == 5 or want == tuple(blocks)
        if like.layout == torch.sparse_coo:
            assert out.is_coalesced()
            assert out.indices().shape == (2, int((DENSE[index] != 0).sum()))
        dense = out.to_dense().to(torch.int8).numpy()
    elif isinstance(like, VerifiedLabels):
        dense = out.to_dense().numpy()
    else:
        assert out.format == like.format
        assert out.dtype == like.dtype
        assert isinstance(out, sp.sparray) == isinstance(like, sp.sparray)
        dense = out.toarray()
    np.testing.assert_array_equal(dense, DENSE[index])


def test_as_form_is_quiet_even_when_torch_warns_always() -> None:
    """torch warns once per process that its compressed layouts are in beta, and that a tensor
    built without invariant checks is unchecked: under ``torch.set_warn_always(True)`` every time.
    ``as_form`` builds its tensors quietly; the caller's own conversions may warn."""
    likes = [LIKES[k](DENSE) for k in ("torch coo", "torch csr", "torch csc", "torch bsr")]
    entries = [read_labels(like, "labels") for like in likes]
    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for form, like in zip(entries, likes, strict=True):
                as_form(form, like)
    finally:
        torch.set_warn_always(before)


def test_stack_rows_keeps_the_implicit_value_and_int8_values() -> None:
    blocks = [VERIFIED[:2], VERIFIED[2:2], VERIFIED[2:]]
    entries = stack_rows(blocks, 5, -1)
    assert entries.implicit == -1
    assert entries.values.dtype == np.int8
    assert entries.indptr.dtype == np.int64
    np.testing.assert_array_equal(entries.dense_rows(0, 6), VERIFIED)
    _equal(unknown_counts(entries)[0], (VERIFIED == -1).sum(axis=0))
    empty = stack_rows([], 3, 0)
    assert empty.shape == (0, 3)
    assert empty.values.dtype == np.int8


def _pair_oracle(dense: np.ndarray) -> np.ndarray:
    y = (dense == 1).astype(np.float64)  # exact: counts far below 2**53
    return (y.T @ y).astype(np.int64)


@pytest.mark.parametrize(
    "shape", [(0, 4), (6, 5), (200, 1100)], ids=["no images", "small", "tiles"]
)
def test_pair_counts_are_the_dense_product(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random(shape) < 0.01).astype(np.int8) if shape != (6, 5) else DENSE.copy()
    if shape[0]:
        dense[:, -1] = 0  # the last class has no positive: the counts keep their (C, C) shape
        dense[0, :40] = 1  # one image with many labels: pairs far apart
    got = pair_counts(*image_positives(read_labels(sp.csr_matrix(dense), "labels")), shape[1])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _pair_oracle(dense))


def test_images_of_a_class_increase_with_many_ties() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((3000, 3)) < 0.5).astype(np.int8)
    for labels in (dense, sp.csr_matrix(dense)):
        class_ptr, images = class_positives(read_labels(labels, "labels"))
        _equal(images, np.nonzero(dense.T == 1)[1])
        _equal(class_ptr, np.r_[0, np.cumsum(dense.sum(axis=0))])
