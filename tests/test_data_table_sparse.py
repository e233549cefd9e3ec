"""Tables keep their labels sparse: the same labels as the dense matrix, in either form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ltml.data.table as table_module
from ltml import VerifiedLabels
from ltml.data import TableMultiLabel, read_label_table

CLASSES = ("ant", "bee", "cat", "dog", "eel")


def _tags_table(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["image,tags"]
    for i in range(n):
        tags = [CLASSES[k] for k in rng.integers(0, len(CLASSES), rng.integers(0, 4))]
        lines.append(f"img{i}.png,{'|'.join(tags)}")  # repeats ("cat|cat") and empty cells
    path.write_text("\n".join(lines) + "\n")
    return path


def _columns_table(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    cells = np.array(["1", "0", "-1", ""])[rng.integers(0, 4, (n, len(CLASSES)))]
    lines = ["image," + ",".join(CLASSES)]
    lines += [f"img{i}.png," + ",".join(row) for i, row in enumerate(cells)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _slow_tags(path):
    """Transcription of the tags form: 1 where a row lists the class, else 0."""
    rows = path.read_text().splitlines()[1:]
    return [[int(c in row.split(",")[1].split("|")) for c in CLASSES] for row in rows]


def test_tags_form_sparse_is_a_csr_tensor_of_the_same_labels(tmp_path):
    path = _tags_table(tmp_path / "tags.csv")
    dense = read_label_table(path, classes=CLASSES)
    sparse = read_label_table(path, classes=CLASSES, sparse=True)
    assert dense.labels.layout == torch.strided
    assert dense.labels.dtype == torch.int64
    assert sparse.labels.layout == torch.sparse_csr
    assert sparse.labels.dtype == torch.int64
    assert torch.equal(sparse.labels.to_dense(), dense.labels)
    assert dense.labels.tolist() == _slow_tags(path)
    assert sparse.images == dense.images
    assert sparse.classes == dense.classes
    assert sparse.labels.values().numel() == int(dense.labels.sum())  # the ones only


def test_columns_form_sparse_is_verified_labels_of_the_same_labels(tmp_path):
    path = _columns_table(tmp_path / "columns.csv")
    dense = read_label_table(path)
    sparse = read_label_table(path, sparse=True)
    assert isinstance(sparse.labels, VerifiedLabels)
    assert torch.equal(sparse.labels.to_dense(torch.int64), dense.labels)
    assert sparse.labels.nnz == int((dense.labels >= 0).sum())  # -1 and empty: not stored


def test_sparse_none_switches_to_sparse_above_the_size(tmp_path, monkeypatch):
    tags, columns = _tags_table(tmp_path / "t.csv"), _columns_table(tmp_path / "c.csv")
    assert table_module.SPARSE_ABOVE == 2**27
    assert read_label_table(tags, sparse=None).labels.layout == torch.strided
    assert isinstance(read_label_table(columns, sparse=None).labels, torch.Tensor)
    monkeypatch.setattr(table_module, "SPARSE_ABOVE", 40 * 5 - 1)  # 40 images x 5 classes
    assert read_label_table(tags, sparse=None).labels.layout == torch.sparse_csr
    assert isinstance(read_label_table(columns, sparse=None).labels, VerifiedLabels)
    # The default stays dense whatever the size: not every part takes sparse labels yet.
    assert read_label_table(tags).labels.layout == torch.strided
    assert isinstance(read_label_table(columns).labels, torch.Tensor)
    monkeypatch.setattr(table_module, "SPARSE_ABOVE", 40 * 5)
    assert read_label_table(tags, sparse=None).labels.layout == torch.strided


@pytest.mark.parametrize("make", [_tags_table, _columns_table])
def test_dataset_rows_are_dense_either_way(tmp_path, make):
    path = make(tmp_path / "labels.csv", n=6)
    for i in range(6):
        Image.new("RGB", (4, 4)).save(tmp_path / f"img{i}.png")
    dense = TableMultiLabel(path, tmp_path)
    sparse = TableMultiLabel(path, tmp_path, sparse=True)
    assert not isinstance(sparse.labels, torch.Tensor) or sparse.labels.layout == torch.sparse_csr
    for i in [*range(6), -1]:
        _, expected = dense[i]
        _, row = sparse[i]
        assert row.dtype == torch.float32
        assert row.layout == torch.strided
        assert torch.equal(row, expected)


def test_dataframe_source_and_bad_sparse(tmp_path):
    import pandas as pd  # a test dependency

    frame = pd.DataFrame({"image": ["a.png", "b.png"], "tags": ["ant|dog", ""]})
    sparse = read_label_table(frame, sparse=True)
    assert sparse.labels.to_dense().tolist() == [[1, 1], [0, 0]]
    for bad in ("yes", 1, 0.5):
        with pytest.raises(TypeError, match="`sparse` must be True or False"):
            read_label_table(frame, sparse=bad)
