"""Your own multi-label data: a table of image paths and labels (CSV, TSV or a DataFrame).

One row per image: its path relative to an image root, and its labels in one of two forms.

- **tags**: one column (``tags`` by default) lists the positive classes, joined by a separator:
  ``cat|dog``. Every class not listed is negative; an empty cell is an image with no positive.
- **columns**: one column per class holding ``1`` (positive), ``0`` (negative), ``-1`` or an
  empty cell (unknown, see the partial-labels guide).

:func:`read_label_table` reads the labels alone (the long-tail report and the splitter need no
image); :class:`TableMultiLabel` adds the images. Only the standard library's :mod:`csv` is used;
a pandas ``DataFrame`` is accepted as it is, without pandas being a dependency.

Large tables keep their labels sparse (``sparse=``), each form with its own meaning of an entry
that is not stored: the tags form as a torch sparse CSR tensor (not stored: 0, negative, as
everywhere in torch and scipy), the columns form as a :class:`~ltml.VerifiedLabels` (not stored:
-1, unknown).
"""

from __future__ import annotations

import csv
import io
import math
import os
import posixpath
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .._validation import as_class_names, as_path, check_bool, check_callable, check_file
from ..labels import VerifiedLabels
from ._images import load_image
from .image_list import PathLike

_TAGS_COLUMN = "tags"
_TSV_SUFFIXES = (".tsv", ".tab")
SPARSE_ABOVE = 1 << 27
"""Entries (N x C) above which ``sparse=None`` keeps labels sparse: 1 GiB as dense int64."""


class LabelTable(NamedTuple):
    """The labels of a table, as :func:`read_label_table` returns them."""

    images: list[str]
    """Image paths relative to the image root (normalised), row order."""
    labels: Tensor | VerifiedLabels
    """``(N, C)`` labels: a dense int64 tensor of 1 / 0 / -1 (unknown), or sparse (``sparse=``):
    a torch sparse CSR int64 tensor of the ones (tags form), a :class:`~ltml.VerifiedLabels`
    (columns form)."""
    classes: tuple[str, ...]
    """Class names, column order of ``labels``."""


class _Rows(NamedTuple):
    name: str  # the file, or "the DataFrame", for messages
    header: list[str]
    where: list[str]  # "labels.csv, line 7": where each row came from
    fields: list[list[str]]


def read_label_table(
    source: PathLike | Any,
    *,
    image_column: str | None = None,
    tags_column: str | None = None,
    tag_separator: str = "|",
    classes: Sequence[str] | None = None,
    delimiter: str | None = None,
    sparse: bool | None = False,
) -> LabelTable:
    r"""Read a multi-label table: image paths and their label matrix, without opening an image.

    Parameters
    ----------
    source : str, PathLike or pandas.DataFrame
        A UTF-8 CSV / TSV file with a header row (a BOM is fine), or a DataFrame.
    image_column : str, optional
        The column of image paths (relative to the image root). Default: the first column.
    tags_column : str, optional
        The column of tags (tags form). Default: ``"tags"`` when the header has it, else the
        columns form: every other column is a class (or those named by ``classes``).
    tag_separator : str
        What joins the tags of one image (tags form).
    classes : sequence of str, optional
        The classes, in this order. Tags form: a tag not among them is an error. Columns form: the
        columns to read (others, e.g. metadata, are ignored). Default: the tags seen, sorted, or
        every column but the image column, in header order.
    delimiter : str, optional
        Field delimiter of a file. Default: tab for ``.tsv`` / ``.tab`` files or a header with
        tabs and no comma, else comma.
    sparse : bool, optional
        Keep the labels sparse: the tags form as a torch sparse CSR int64 tensor of the ones
        (an entry not stored is 0, negative), the columns form as a
        :class:`~ltml.VerifiedLabels` (an entry not stored is -1, unknown). ``None``: sparse
        when ``N x C`` exceeds :data:`SPARSE_ABOVE` (2**27, 1 GiB as dense int64). Default
        ``False``, dense, as before; every part that takes a label matrix takes both forms.
        Either way ``labels.to_dense()`` is the dense matrix (of int8 for ``VerifiedLabels``).

    Returns
    -------
    LabelTable
        ``(images, labels, classes)``: ``labels`` is ``(N, C)`` int64 of 1 / 0 / -1, or sparse.

    Raises
    ------
    FileNotFoundError
        The file does not exist (``source`` is named).
    TypeError
        ``source`` is neither a path nor a DataFrame; ``classes`` is a single string.
    ValueError
        Naming the file and the line: an empty file or no row, a file that is not UTF-8, a row of
        the wrong length, an empty image path or one that leaves the image root (absolute or
        ``..``), an image listed twice, an unknown tag (``classes`` given), a value outside 1 / 0 /
        -1 / empty, a missing column, a repeated column or class name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ltml.data import read_label_table
    >>> tmp = tempfile.TemporaryDirectory()
    >>> tags = pathlib.Path(tmp.name) / "labels.csv"
    >>> _ = tags.write_text("image,tags\na.jpg,cat|dog\nb.jpg,dog\nc.jpg,\n")
    >>> table = read_label_table(tags)
    >>> table.classes, table.labels.tolist()
    (('cat', 'dog'), [[1, 1], [0, 1], [0, 0]])
    >>> columns = pathlib.Path(tmp.name) / "labels.tsv"
    >>> _ = columns.write_text("path\tcat\tdog\nx/a.jpg\t1\t-1\nx/b.jpg\t0\t\n")
    >>> read_label_table(columns).labels.tolist()  # -1 and empty: unknown
    [[1, -1], [0, -1]]
    >>> read_label_table(tags, sparse=True).labels.to_dense().tolist()
    [[1, 1], [0, 1], [0, 0]]
    >>> read_label_table(columns, sparse=True).labels
    VerifiedLabels(shape=(2, 2), nnz=2, positives=1, known=50.000%)
    >>> tmp.cleanup()
    """
    table, _ = _read(source, image_column, tags_column, tag_separator, classes, delimiter, sparse)
    return table


class TableMultiLabel(Dataset[tuple[Any, Tensor]]):
    r"""Images listed in a table (CSV, TSV or DataFrame) with one multi-hot label vector each.

    The table is read at construction (no image is opened, but every image is checked to exist),
    so :attr:`labels` is ready for samplers, losses, :func:`~ltml.data.describe_labels` and
    :func:`~ltml.data.stratified_split` before any training step. See :func:`read_label_table`
    for the two forms of labels and every option.

    Parameters
    ----------
    source : str, PathLike or pandas.DataFrame
        The table.
    image_root : str or PathLike
        The folder the image paths are relative to; a path may not leave it.
    transform : callable, optional
        Applied to the PIL image (RGB) in ``__getitem__``.
    image_column, tags_column, tag_separator, classes, delimiter, sparse
        As in :func:`read_label_table`; pass the training set's ``classes`` when reading its
        test set, so that both have the same columns.

    Attributes
    ----------
    labels : Tensor or VerifiedLabels, shape (N, C)
        1 / 0 / -1 (unknown) labels in :attr:`classes` order: int64, or sparse (``sparse``).
        ``__getitem__`` gives a dense row either way.
    images : list of str
        Image paths relative to :attr:`root`, row order of :attr:`labels`.
    classes : tuple of str
        The class names.
    root : Path
        The image root.

    Raises
    ------
    FileNotFoundError
        A missing table, image root or image (naming the file and line that lists it).
    ValueError
        As :func:`read_label_table`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from ltml.data import TableMultiLabel
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = pathlib.Path(tmp.name)
    >>> (root / "photos").mkdir()
    >>> for name in ("a", "b"):
    ...     Image.new("RGB", (8, 8)).save(root / "photos" / f"{name}.png")
    >>> text = "image,tags\nphotos/a.png,cat|dog\nphotos/b.png,dog\n"
    >>> _ = (root / "labels.csv").write_text(text)
    >>> ds = TableMultiLabel(root / "labels.csv", image_root=root)
    >>> ds.classes, ds.labels.tolist()
    (('cat', 'dog'), [[1, 1], [0, 1]])
    >>> image, target = ds[0]
    >>> image.size, target
    ((8, 8), tensor([1., 1.]))
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        source: PathLike | Any,
        image_root: PathLike,
        *,
        transform: Callable[[Image.Image], Any] | None = None,
        image_column: str | None = None,
        tags_column: str | None = None,
        tag_separator: str = "|",
        classes: Sequence[str] | None = None,
        delimiter: str | None = None,
        sparse: bool | None = False,
    ) -> None:
        check_callable(transform, "transform", optional=True)
        self.root = as_path(image_root, "image_root")
        table, where = _read(
            source, image_column, tags_column, tag_separator, classes, delimiter, sparse
        )
        _check_images_exist(self.root, table.images, where)
        self.images, self.labels, self.classes = table
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        labels = self.labels
        if isinstance(labels, VerifiedLabels):
            row = labels.row(i)
        else:
            row = labels[i].to_dense() if labels.layout == torch.sparse_csr else labels[i]
        return load_image(self.root / self.images[i], self.transform), row.float()


def _read(
    source: PathLike | Any,
    image_column: str | None,
    tags_column: str | None,
    tag_separator: str,
    classes: Sequence[str] | None,
    delimiter: str | None,
    sparse: bool | None,
) -> tuple[LabelTable, list[str]]:
    """Read a table; also return where each row came from, for the image check's messages."""
    if not isinstance(tag_separator, str) or not tag_separator:
        raise ValueError(f"`tag_separator` must be a non-empty string, got {tag_separator!r}")
    if sparse is not None:
        sparse = check_bool(sparse, "sparse")
    rows = _dataframe_rows(source) if _is_dataframe(source) else _file_rows(source, delimiter)
    column = {name: j for j, name in enumerate(rows.header)}
    image_j = _column(rows, image_column or rows.header[0], "image_column")
    if tags_column is None and _TAGS_COLUMN in column and image_j != column[_TAGS_COLUMN]:
        tags_column = _TAGS_COLUMN
    if classes is not None:
        classes = as_class_names(classes)
    images = _image_paths(rows, image_j)
    labels: Tensor | VerifiedLabels
    if tags_column is not None:
        tags_j = _column(rows, tags_column, "tags_column")
        indptr, indices, names = _tags_labels(rows, tags_j, tag_separator, classes)
        shape = (len(images), len(names))
        if sparse or (sparse is None and math.prod(shape) > SPARSE_ABOVE):
            labels = _sparse_csr(indptr, indices, shape)
        else:
            dense = np.zeros(shape, dtype=np.int64)
            dense[np.repeat(np.arange(shape[0]), np.diff(indptr)), indices] = 1
            labels = torch.from_numpy(dense)
    else:
        names = classes or tuple(h for j, h in enumerate(rows.header) if j != image_j)
        if not names:
            raise ValueError(
                f"label table {rows.name} has no class column: expected an image column and "
                f"either a {_TAGS_COLUMN!r} column or one column per class"
            )
        columns = [_column(rows, c, "classes") for c in names]
        labels = torch.from_numpy(_column_labels(rows, columns))
        if sparse or (sparse is None and labels.numel() > SPARSE_ABOVE):
            labels = VerifiedLabels.from_dense(labels)
    return LabelTable(images, labels, tuple(names)), rows.where


def _is_dataframe(source: Any) -> bool:
    return hasattr(source, "columns") and hasattr(source, "itertuples")


def _file_rows(path: PathLike, delimiter: str | None) -> _Rows:
    p = check_file(as_path(path, "source"), "source", "label table")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{p}, line {line}: not UTF-8 text ({err.reason} at byte {err.start}); "
            "save the table as UTF-8"
        ) from None
    if not text.strip():
        raise ValueError(f"label table {p} is empty: expected a header row, then one row per image")
    if delimiter is None:
        first = text.lstrip().split("\n", 1)[0]
        tabbed = p.suffix.lower() in _TSV_SUFFIXES or ("\t" in first and "," not in first)
        delimiter = "\t" if tabbed else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    where, fields = [], []
    header: list[str] | None = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = [cell.strip() for cell in row]
            else:
                where.append(f"{p}, line {reader.line_num}")
                fields.append(row)
    except csv.Error as err:
        raise ValueError(f"{p}, line {reader.line_num}: malformed {err}") from None
    assert header is not None  # the text is not blank
    return _checked_rows(_Rows(str(p), header, where, fields))


def _dataframe_rows(frame: Any) -> _Rows:
    header = [str(c).strip() for c in frame.columns]
    fields = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    where = [f"the DataFrame, row {i}" for i in range(len(fields))]
    return _checked_rows(_Rows("the DataFrame", header, where, fields))


def _cell(value: Any) -> str:
    """Return a DataFrame cell as the text a CSV file would hold (NaN / None / NA: empty)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
    return str(value)


def _checked_rows(rows: _Rows) -> _Rows:
    if not rows.fields:
        raise ValueError(f"label table {rows.name} has a header but no row")
    seen: set[str] = set()
    for name in rows.header:
        if name in seen:
            raise ValueError(f"label table {rows.name} has column {name!r} twice in its header")
        seen.add(name)
    for where, row in zip(rows.where, rows.fields, strict=True):
        if len(row) != len(rows.header):
            raise ValueError(f"{where}: {len(row)} field(s), but the header has {len(rows.header)}")
    return rows


def _column(rows: _Rows, name: str, argument: str) -> int:
    if name not in rows.header:
        raise ValueError(
            f"`{argument}`: no column {name!r} in {rows.name}; its header is {rows.header}"
        )
    return rows.header.index(name)


def _image_paths(rows: _Rows, j: int) -> list[str]:
    """Normalised image paths; each must stay inside the root and appear once."""
    first: dict[str, str] = {}
    paths = []
    for where, row in zip(rows.where, rows.fields, strict=True):
        raw = row[j].strip()
        path = posixpath.normpath(raw)
        if not raw:
            raise ValueError(f"{where}: empty image path in column {rows.header[j]!r}")
        if raw.startswith(("/", "\\")) or os.path.isabs(raw) or path.split("/")[0] == "..":
            raise ValueError(
                f"{where}: image path {raw!r} leaves the image root; "
                "give paths relative to it, without '..'"
            )
        if path in first:
            raise ValueError(f"{where}: image {raw!r} is listed twice (first at {first[path]})")
        first[path] = where
        paths.append(path)
    return paths


def _tags_labels(
    rows: _Rows, j: int, separator: str, classes: tuple[str, ...] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Return the positives of each row as CSR (``indptr``, ``indices``), and the classes."""
    tags = [[t.strip() for t in row[j].split(separator) if t.strip()] for row in rows.fields]
    if classes is None:
        classes = tuple(sorted({t for image in tags for t in image}))
        if not classes:
            raise ValueError(f"label table {rows.name}: no tag in column {rows.header[j]!r}")
    index = {name: k for k, name in enumerate(classes)}
    indptr, indices = [0], []
    for r, image in enumerate(tags):
        positive = set()
        for tag in image:
            k = index.get(tag)
            if k is None:
                shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
                raise ValueError(f"{rows.where[r]}: unknown tag {tag!r}; the classes are {shown}")
            positive.add(k)
        indices.extend(sorted(positive))
        indptr.append(len(indices))
    return np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int64), classes


def _sparse_csr(indptr: np.ndarray, indices: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """Return the ones as a torch sparse CSR int64 tensor (implicit entries: 0, negative)."""
    with warnings.catch_warnings():  # torch says its sparse CSR support is in beta, once
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(indices),
            torch.ones(len(indices), dtype=torch.int64),
            shape,
            check_invariants=False,  # sorted and in range by construction
        )


_LABEL_TEXT = {"1": 1, "0": 0, "-1": -1, "": -1}


def _column_labels(rows: _Rows, columns: list[int]) -> np.ndarray:
    cells = np.char.strip(np.array([[row[j] for j in columns] for row in rows.fields], dtype=str))
    labels = np.full(cells.shape, -1, dtype=np.int64)
    known = np.zeros(cells.shape, dtype=bool)
    for text, value in _LABEL_TEXT.items():
        match = cells == text
        labels[match] = value
        known |= match
    if not known.all():
        r, c = (int(i[0]) for i in np.nonzero(~known))
        raise ValueError(
            f"{rows.where[r]}: {str(cells[r, c])!r} in column {rows.header[columns[c]]!r} is not "
            "a label: expected 1 (positive), 0 (negative), -1 or empty (unknown)"
        )
    return labels


def _check_images_exist(root: Path, images: list[str], where: list[str]) -> None:
    """Raise naming the table line of each missing image; one listing per folder, no stat."""
    if not root.is_dir():
        raise FileNotFoundError(f"`image_root`: image root {root} not found")
    listings: dict[str, set[str]] = {}
    missing = []
    for r, path in enumerate(images):
        folder, name = posixpath.split(path)
        if folder not in listings:
            d = root / folder
            listings[folder] = set(os.listdir(d)) if d.is_dir() else set()
        if name not in listings[folder]:
            missing.append(f"{where[r]}: {root / path}")
    if missing:
        more = f"\n  (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(
            f"`image_root`: {len(missing)} image(s) not found under {root}:\n  "
            + "\n  ".join(missing[:3])
            + more
        )
