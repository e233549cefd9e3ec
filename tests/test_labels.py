"""VerifiedLabels: sparse partial labels whose implicit entry is unknown (-1)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

import ltml
from ltml import VerifiedLabels


def _random_partial(n: int, c: int, seed: int, known: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, c))
    y[rng.random((n, c)) > known] = -1
    return y


def _reference_csr(y: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Slow transcription of the CSR layout: row by row, known entries in class order."""
    indptr, indices, values = [0], [], []
    for row in y:
        for k, v in enumerate(row):
            if v != -1:
                indices.append(k)
                values.append(int(v))
        indptr.append(len(indices))
    return indptr, indices, values


SHAPES = [(0, 3), (1, 1), (5, 4), (40, 17), (7, 300)]


@pytest.mark.parametrize(("n", "c"), SHAPES)
@pytest.mark.parametrize("known", [0.0, 0.3, 1.0])
def test_from_dense_matches_the_slow_layout_and_round_trips(n, c, known):
    y = _random_partial(n, c, seed=n * c, known=known)
    labels = VerifiedLabels.from_dense(y)
    indptr, indices, values = _reference_csr(y)
    assert labels.indptr.tolist() == indptr
    assert labels.indices.tolist() == indices
    assert labels.values.tolist() == values
    assert (labels.indptr.dtype, labels.indices.dtype, labels.values.dtype) == (
        torch.int64,
        torch.int32,
        torch.int8,
    )
    assert labels.shape == (n, c)
    assert len(labels) == n
    assert labels.nnz == len(indices)
    dense = labels.to_dense()
    assert dense.dtype == torch.int8
    assert dense.tolist() == y.tolist()
    assert torch.equal(labels.to_dense(torch.int64), torch.from_numpy(y))
    rebuilt = VerifiedLabels(indptr, indices, values, c)
    assert torch.equal(rebuilt.to_dense(), dense)


@pytest.mark.parametrize("seed", range(5))
def test_from_triplets_in_any_order_equals_from_dense(seed):
    y = _random_partial(30, 11, seed)
    rows, cols = np.nonzero(y >= 0)
    order = np.random.default_rng(seed).permutation(len(rows))
    rows, cols = rows[order], cols[order]
    # every verdict given twice: the same verdict twice is one verdict
    rows, cols = np.concatenate([rows, rows]), np.concatenate([cols, cols])
    labels = VerifiedLabels.from_triplets(rows, cols, y[rows, cols], y.shape)
    assert labels.to_dense().tolist() == y.tolist()
    assert labels.nnz == int((y >= 0).sum())


def test_from_triplets_conflicts():
    rows, cols, values = [0, 0, 1, 1, 1], [2, 2, 0, 0, 1], [1, 0, 1, 1, 0]
    with pytest.raises(ValueError, match=r"1 \(row, class\) pair\(s\).*row 0, class 2"):
        VerifiedLabels.from_triplets(rows, cols, values, (2, 3))
    labels = VerifiedLabels.from_triplets(rows, cols, values, (2, 3), conflicts="unknown")
    assert labels.to_dense().tolist() == [[-1, -1, -1], [1, 0, -1]]
    with pytest.raises(ValueError, match="`conflicts` must be one of"):
        VerifiedLabels.from_triplets(rows, cols, values, (2, 3), conflicts="first")


def test_from_triplets_accepts_bool_float_and_tensor_values():
    expected = [[1, -1], [-1, 0]]
    for values in ([1, 0], np.array([True, False]), np.array([1.0, 0.0]), torch.tensor([1, 0])):
        labels = VerifiedLabels.from_triplets([0, 1], [0, 1], values, (2, 2))
        assert labels.to_dense().tolist() == expected


@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.complex64, "int8", None])
def test_to_dense_needs_a_dtype_that_holds_minus_one(dtype):
    with pytest.raises(TypeError, match="`dtype` must be a signed integer or floating torch"):
        VerifiedLabels([0, 1], [0], [1], 2).to_dense(dtype)


def test_rows_row_and_getitem():
    y = _random_partial(12, 6, seed=3, known=0.5)
    labels = VerifiedLabels.from_dense(y)
    for i in range(-12, 12):
        assert labels.row(i).tolist() == y[i].tolist()
        assert labels[i].dtype == torch.int8
        assert labels[i].tolist() == y[i].tolist()
    index = [5, 0, 5, 11, 3]
    subset = labels.rows(index)
    assert isinstance(subset, VerifiedLabels)
    assert subset.to_dense().tolist() == y[index].tolist()
    assert labels.rows(np.array([], dtype=np.int64)).shape == (0, 6)
    assert labels.rows(torch.tensor([2], dtype=torch.int32)).to_dense().tolist() == [y[2].tolist()]
    with pytest.raises(IndexError, match="row 12 is out of range for 12 rows"):
        labels[12]
    with pytest.raises(TypeError, match="`i` must be an integer"):
        labels[1:3]
    with pytest.raises(ValueError, match=r"`index` must hold row indices in \[0, 12\)"):
        labels.rows([0, 12])
    with pytest.raises(TypeError, match="`index` must be a 1-D sequence of integer row indices"):
        labels.rows(np.array([True, False]))
    assert [row.tolist() for row in labels] == y.tolist()  # iteration stops at IndexError


def test_positives_is_the_csr_of_the_ones():
    y = _random_partial(25, 9, seed=4, known=0.6)
    indptr, indices = VerifiedLabels.from_dense(y).positives()
    for i, row in enumerate(y):
        assert indices[indptr[i] : indptr[i + 1]].tolist() == np.flatnonzero(row == 1).tolist()
    assert indptr.dtype == torch.int64
    assert int(indptr[-1]) == int((y == 1).sum())


def test_repr_frozen_and_pickle():
    labels = VerifiedLabels.from_dense(np.array([[1, -1, 0, -1], [-1, -1, -1, 1]]))
    assert repr(labels) == "VerifiedLabels(shape=(2, 4), nnz=3, positives=2, known=37.500%)"
    assert repr(VerifiedLabels([0], [], [], 5)) == (
        "VerifiedLabels(shape=(0, 5), nnz=0, positives=0, known=0.000%)"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        labels.num_classes = 3  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(labels))
    assert torch.equal(back.to_dense(), labels.to_dense())
    assert ltml.labels.VerifiedLabels is VerifiedLabels


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_never_taken_for_a_sparse_matrix_whose_implicit_entry_is_zero():
    # The same stored entries mean different matrices: a torch sparse matrix is 0 elsewhere,
    # VerifiedLabels is unknown elsewhere. Label functions refuse it as a dense matrix.
    labels = VerifiedLabels([0, 1], [1], [1], 3)
    sparse = torch.sparse_csr_tensor(
        labels.indptr, labels.indices.long(), labels.values.long(), (1, 3), check_invariants=True
    )
    assert sparse.to_dense().tolist() == [[0, 1, 0]]
    assert labels.to_dense().tolist() == [[-1, 1, -1]]
    with pytest.raises(TypeError):
        torch.as_tensor(labels)  # not a tensor: no silent conversion


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([1, 2], [0, 1], [1, 1], 3), ValueError, r"`indptr` must run from 0 to len\(`indices`\)"),
        (([0, 1], [0, 1], [1, 1], 3), ValueError, r"`indptr` must run from 0 .* = 2"),
        (([], [], [], 3), ValueError, r"`indptr` must run from 0 .* got empty"),
        (([0, 2, 1, 3], [0, 1, 2], [1, 1, 1], 3), ValueError, "`indptr` must never decrease"),
        (([0, 2], [1, 0], [1, 1], 3), ValueError, "`indices` must strictly increase.*row 0"),
        (([0, 1, 3], [0, 2, 2], [1, 1, 1], 3), ValueError, "strictly increase.*row 1 is not"),
        (([0, 1], [3], [1], 3), ValueError, r"`indices` must hold class indices in \[0, 3\)"),
        (([0, 1], [-1], [1], 3), ValueError, r"`indices` must hold class indices in \[0, 3\)"),
        (([0, 1], [0], [2], 3), ValueError, r"`values` must hold verdicts"),
        (([0, 1], [0], np.array([-1]), 3), ValueError, r"`values` must contain only .*\{0, 1\}"),
        (([0, 1], [0], np.array([0.5]), 3), ValueError, r"`values` must contain only"),
        (([0, 2], [0, 1], [1], 3), ValueError, "`indices` and `values` must have the same shape"),
        (([0, 1], [0], [1], 0), ValueError, "`num_classes` must be an integer >= 1"),
        (([0, 1], [0], [1], 3.0), TypeError, "`num_classes` must be an integer"),
        (([0, 1], np.array([0.0]), [1], 3), TypeError, "`indices` must be a 1-D sequence"),
        (([0, 1], np.array([True]), [1], 3), TypeError, "`indices` must be a 1-D sequence"),
        ((np.array([[0, 1]]), [0], [1], 3), TypeError, "`indptr` must be a 1-D sequence"),
        (([0, 1], "0", [1], 3), TypeError, "`indices` must be a sequence of integer"),
        (([0, 1], [0], ["1"], 3), TypeError, "`values` must be a sequence of integer verdicts"),
    ],
)
def test_bad_csr_arrays_are_refused(args, error, match):
    with pytest.raises(error, match=match):
        VerifiedLabels(*args)


def test_bad_triplets_are_refused():
    with pytest.raises(ValueError, match=r"`rows` must hold row indices in \[0, 2\)"):
        VerifiedLabels.from_triplets([2], [0], [1], (2, 3))
    with pytest.raises(ValueError, match=r"`cols` must hold class indices in \[0, 3\)"):
        VerifiedLabels.from_triplets([0], [3], [1], (2, 3))
    with pytest.raises(ValueError, match="`rows` and `cols` must have the same shape"):
        VerifiedLabels.from_triplets([0, 1], [0], [1], (2, 3))
    with pytest.raises(ValueError, match="`rows` and `values` must have the same shape"):
        VerifiedLabels.from_triplets([0], [0], [1, 1], (2, 3))
    with pytest.raises(TypeError, match=r"`shape` must be a pair \(N, C\)"):
        VerifiedLabels.from_triplets([0], [0], [1], 3)
    with pytest.raises(ValueError, match=r"`shape\[1\]` must be an integer >= 1"):
        VerifiedLabels.from_triplets([0], [0], [1], (2, 0))
    with pytest.raises(ValueError, match=r"`shape` must have at most 2\*\*62 entries"):
        VerifiedLabels.from_triplets([0], [0], [1], (2**40, 2**23))
    with pytest.raises(ValueError, match=r"`labels` must contain only values in \{0, 1, -1\}"):
        VerifiedLabels.from_dense(np.array([[2, 0]]))


def test_memory_at_openimages_scale_is_under_half_a_gigabyte():
    # 9M images x 9,605 classes, 8.3 verdicts per image: the CSR arrays' bytes (int64 offsets,
    # int32 classes, int8 verdicts), measured on a smaller container of the same dtypes.
    labels = VerifiedLabels.from_dense(_random_partial(100, 50, seed=0))
    per_verdict = labels.indices.element_size() + labels.values.element_size()
    per_row = labels.indptr.element_size()
    n, nnz = 9_000_000, int(9_000_000 * 8.3)
    assert per_verdict * nnz + per_row * (n + 1) < 0.45e9
