"""Your own multi-label data: a table of image paths and labels (CSV, TSV or a DataFrame).

One row per image: its path relative to an image root, and its labels in one of two forms.

- **tags**: one column (``tags`` by default) lists the positive classes, joined by a separator:
  ``cat|dog``. Every class not listed is negative; an empty cell is an image with no positive.
  A marker of your choice (``unknown=``, e.g. ``"NA"``, or ``""`` for empty cells) makes a row's
  labels unknown (-1); a tag of your choice (``no_label=``, e.g. ``"No Finding"``) says the image
  has none of the classes.
- **columns**: one column per class holding ``1`` (positive), ``0`` (negative), ``-1`` or an
  empty cell (unknown, see the partial-labels guide); ``1.0`` / ``0.0`` / ``-1.0`` too.
  Metadata columns are left out with ``ignore_columns=``, or the label columns named with
  ``classes=``.

Files may be gzip-compressed (``labels.csv.gz``). A trailing delimiter at the end of the header
(``image,cat,dog,``, as some spreadsheets write) adds no column.

:func:`read_label_table` reads the labels alone (the long-tail report and the splitter need no
image); :class:`TableMultiLabel` adds the images. Only the standard library's :mod:`csv` is used;
a pandas ``DataFrame`` is accepted as it is, without pandas being a dependency.

Large tables keep their labels sparse (``sparse=``), each form with its own meaning of an entry
that is not stored: the tags form as a torch sparse CSR tensor (not stored: 0, negative, as
everywhere in torch and scipy), the columns form as a :class:`~ltml.VerifiedLabels` (not stored:
-1, unknown).
"""

from __future__ import annotations

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

from .._validation import as_class_names, as_path, check_bool, check_callable
from ..labels import VerifiedLabels
from ._images import load_image
from ._table_labels import Options, check_options, refuse_unknown_rows, tags_labels
from ._table_rows import Rows, column, dataframe_rows, file_rows, image_paths, is_dataframe
from .image_list import PathLike

_TAGS_COLUMN = "tags"
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


def read_label_table(
    source: PathLike | Any,
    *,
    image_column: str | None = None,
    tags_column: str | None = None,
    tag_separator: str = "|",
    classes: Sequence[str] | None = None,
    delimiter: str | None = None,
    sparse: bool | None = False,
    unknown: str | None = None,
    no_label: str | None = None,
    ignore_columns: Sequence[str] = (),
) -> LabelTable:
    r"""Read a multi-label table: image paths and their label matrix, without opening an image.

    Parameters
    ----------
    source : str, PathLike or pandas.DataFrame
        A UTF-8 CSV / TSV file with a header row (a BOM is fine), gzip-compressed or not (told
        by its content, e.g. ``labels.csv.gz``), or a DataFrame.
    image_column : str, optional
        The column of image paths (relative to the image root). Default: the first column.
    tags_column : str, optional
        The column of tags (tags form). Default: ``"tags"`` when the header has it, else the
        columns form: every other column is a class (or those named by ``classes``).
    tag_separator : str
        What joins the tags of one image (tags form).
    classes : sequence of str, optional
        The classes, in this order. Tags form: a tag not among them is an error. Columns form: the
        label columns to read (others, e.g. metadata, are ignored). Default: the tags seen,
        sorted, or every column but the image column and ``ignore_columns``, in header order.
    delimiter : str, optional
        Field delimiter of a file. Default: tab for ``.tsv`` / ``.tab`` files (also
        ``.tsv.gz``) or a header with tabs and no comma, else comma.
    sparse : bool, optional
        Keep the labels sparse: the tags form as a torch sparse CSR int64 tensor of the ones
        (an entry not stored is 0, negative), the columns form as a
        :class:`~ltml.VerifiedLabels` (an entry not stored is -1, unknown). ``None``: sparse
        when ``N x C`` exceeds :data:`SPARSE_ABOVE` (2**27, 1 GiB as dense int64). Default
        ``False``, dense, as before; every part that takes a label matrix takes both forms.
        Either way ``labels.to_dense()`` is the dense matrix (of int8 for ``VerifiedLabels``).
    unknown : str, optional
        Tags form: a cell holding exactly this marker (e.g. ``"NA"``, ``"?"``) means the row's
        tags are unknown, and its labels are all -1 (unknown, ignored by the losses and the
        metrics), not all 0. ``unknown=""``: an empty cell (or a DataFrame's NaN / None) is
        unknown. Default: none, and an empty cell is an image with no positive. A tag that looks
        like a missing value (``NA``, ``N/A``, ``nan``, ``None``, ``null``, ``?``, ``missing``)
        becomes a class with a warning, unless ``classes`` names it. Not with ``sparse`` (the
        sparse tags form stores ones only).
    no_label : str, optional
        Tags form: a tag meaning "none of the classes" (e.g. ``"No Finding"``): the row's labels
        are all 0 and the tag is not a class. With another tag on the same row: an error.
    ignore_columns : sequence of str
        Columns form: columns that are not classes (metadata, e.g. a patient id or a split
        name), left out of the default classes. Each must be in the header.

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
        -1 / empty, a missing column, a repeated column or class name, a column without a name
        (but for a trailing delimiter), a file that is gzip but broken; the ``unknown`` marker
        or the ``no_label`` tag with another tag, or where it does not apply.

    Warns
    -----
    UserWarning
        A tag that looks like a missing value became a class (tags form, classes not given).

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
    >>> marked = pathlib.Path(tmp.name) / "marked.csv"
    >>> _ = marked.write_text("image,tags\na.jpg,cat\nb.jpg,NA\nc.jpg,nothing\n")
    >>> read_label_table(marked, unknown="NA", no_label="nothing").labels.tolist()
    [[1], [-1], [0]]
    >>> tmp.cleanup()
    """
    table, _ = _read(
        source,
        image_column,
        tags_column,
        tag_separator,
        classes,
        delimiter,
        sparse,
        Options(unknown, no_label, ignore_columns),
    )
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
    unknown, no_label, ignore_columns
        As in :func:`read_label_table`: a tags-form marker of unknown rows, a tag meaning no
        label, metadata columns of the columns form.

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
        unknown: str | None = None,
        no_label: str | None = None,
        ignore_columns: Sequence[str] = (),
    ) -> None:
        check_callable(transform, "transform", optional=True)
        self.root = as_path(image_root, "image_root")
        table, where = _read(
            source,
            image_column,
            tags_column,
            tag_separator,
            classes,
            delimiter,
            sparse,
            Options(unknown, no_label, ignore_columns),
        )
        _check_images_exist(self.root, table.images, where)
        self.images, self.labels, self.classes = table
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, i: int) -> Path:
        """Return the file of image ``i`` (what ``self[i]`` opens), e.g. to decode it elsewhere."""
        return self.root / self.images[i]

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        labels = self.labels
        if isinstance(labels, VerifiedLabels):
            row = labels.row(i)
        else:
            row = labels[i].to_dense() if labels.layout == torch.sparse_csr else labels[i]
        return load_image(self.image_path(i), self.transform), row.float()


def _read(
    source: PathLike | Any,
    image_column: str | None,
    tags_column: str | None,
    tag_separator: str,
    classes: Sequence[str] | None,
    delimiter: str | None,
    sparse: bool | None,
    options: Options,
) -> tuple[LabelTable, list[str]]:
    """Read a table; also return where each row came from, for the image check's messages."""
    if not isinstance(tag_separator, str) or not tag_separator:
        raise ValueError(f"`tag_separator` must be a non-empty string, got {tag_separator!r}")
    if sparse is not None:
        sparse = check_bool(sparse, "sparse")
    if delimiter is not None and (
        not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'
    ):
        raise ValueError(
            "`delimiter` must be one character other than a quote or a line break (e.g. ',' or "
            f"a tab), got {delimiter!r}"
        )
    rows = dataframe_rows(source) if is_dataframe(source) else file_rows(source, delimiter)
    position = {name: j for j, name in enumerate(rows.header)}
    image_j = column(rows, image_column or rows.header[0], "image_column")
    if tags_column is None and _TAGS_COLUMN in position and image_j != position[_TAGS_COLUMN]:
        tags_column = _TAGS_COLUMN
    if classes is not None:
        classes = as_class_names(classes)
    images = image_paths(rows, image_j)
    check_options(options, rows, tags_column is not None, classes)
    labels: Tensor | VerifiedLabels
    if tags_column is not None:
        tags_j = column(rows, tags_column, "tags_column")
        indptr, indices, names, unknown_rows = tags_labels(
            rows, tags_j, tag_separator, classes, options
        )
        shape = (len(images), len(names))
        if sparse or (sparse is None and math.prod(shape) > SPARSE_ABOVE):
            refuse_unknown_rows(rows, unknown_rows, options.unknown)
            labels = _sparse_csr(indptr, indices, shape)
        else:
            dense = np.zeros(shape, dtype=np.int64)
            dense[np.repeat(np.arange(shape[0]), np.diff(indptr)), indices] = 1
            dense[unknown_rows] = -1
            labels = torch.from_numpy(dense)
    else:
        ignored = {image_j, *(column(rows, c, "ignore_columns") for c in options.ignore_columns)}
        names = classes or tuple(h for j, h in enumerate(rows.header) if j not in ignored)
        if not names:
            raise ValueError(
                f"label table {rows.name} has no class column: expected an image column and "
                f"either a {_TAGS_COLUMN!r} column or one column per class"
            )
        if "" in names:
            raise ValueError(
                f"label table {rows.name}: column {rows.header.index('') + 1} of the header has "
                "no name, so it cannot be a class; name it, or leave it out with "
                "`ignore_columns=['']` (a trailing delimiter alone is ignored)"
            )
        columns = [column(rows, c, "classes") for c in names]
        labels = torch.from_numpy(_column_labels(rows, columns, classes is None))
        if sparse or (sparse is None and labels.numel() > SPARSE_ABOVE):
            labels = VerifiedLabels.from_dense(labels)
    return LabelTable(images, labels, tuple(names)), rows.where


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


def _column_labels(rows: Rows, columns: list[int], every_column: bool) -> np.ndarray:
    cells = np.char.strip(np.array([[row[j] for j in columns] for row in rows.fields], dtype=str))
    labels = np.full(cells.shape, -1, dtype=np.int64)
    known = np.zeros(cells.shape, dtype=bool)
    for text, value in _LABEL_TEXT.items():
        match = cells == text
        labels[match] = value
        known |= match
    if not known.all():  # numbers written otherwise: 1.0, 0.0, -1.0, +1
        for text in np.unique(cells[~known]).tolist():
            number = _number(text)
            if number is not None:
                match = cells == text
                labels[match] = number
                known |= match
    if not known.all():
        r, c = (int(i[0]) for i in np.nonzero(~known))
        hint = (
            "; if the column is not a class (metadata), leave it out with "
            "`ignore_columns` or name the label columns with `classes`"
            if every_column
            else ""
        )
        raise ValueError(
            f"{rows.where[r]}: {str(cells[r, c])!r} in column {rows.header[columns[c]]!r} is not "
            "a label: expected 1 (positive), 0 (negative), -1 or empty (unknown), or 1.0 / "
            f"0.0 / -1.0{hint}"
        )
    return labels


def _number(text: str) -> int | None:
    """Return 1, 0 or -1 for a cell that is that number written as a float, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value in (1.0, 0.0, -1.0) else None


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
