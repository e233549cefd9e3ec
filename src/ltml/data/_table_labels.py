"""A label table's tags to labels, and the options of missing and metadata values.

Part of :func:`~ltml.data.read_label_table` (:mod:`._table_rows` reads the cells, :mod:`.table`
reads the columns form): the tags of each row to its positives, with the ``unknown`` marker and
the ``no_label`` tag, and the checks of ``unknown``, ``no_label`` and ``ignore_columns``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._table_rows import Rows


class Options(NamedTuple):
    """The options of missing and metadata values (see :func:`read_label_table`)."""

    unknown: str | None
    no_label: str | None
    ignore_columns: Sequence[str]


_MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "nan", "none", "null", "nil", "?", "missing"})
"""Tags (lower case) that look like a missing value rather than a class: warned about."""


def check_options(
    options: Options, rows: Rows, tags: bool, classes: tuple[str, ...] | None
) -> None:
    """Check ``unknown``, ``no_label`` and ``ignore_columns`` against the form of the table."""
    for name in ("unknown", "no_label"):
        value = getattr(options, name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"`{name}` must be a string (a tag) or None, got {value!r}")
        if not tags:
            raise ValueError(
                f"`{name}` applies to the tags form, but {rows.name} is read in the columns form "
                "(no tags column); there, an empty cell or -1 is unknown and 0 negative"
            )
    if options.no_label is not None and not options.no_label.strip():
        raise ValueError("`no_label` must be a tag, got an empty string (an empty cell has no tag)")
    if options.no_label is not None and options.no_label.strip() == (options.unknown or "").strip():
        raise ValueError(f"`unknown` and `no_label` must differ, got {options.no_label!r} for both")
    if classes is not None and options.no_label is not None and options.no_label in classes:
        raise ValueError(
            f"`no_label`: {options.no_label!r} is also among `classes`; a tag meaning no label "
            "cannot be a class"
        )
    ignore = options.ignore_columns
    if isinstance(ignore, str) or not isinstance(ignore, Sequence):
        raise TypeError(
            f"`ignore_columns` must be a sequence of column names, got {type(ignore).__name__}"
        )
    if ignore and tags:
        raise ValueError(
            "`ignore_columns` applies to the columns form; the tags form reads the image and "
            f"tags columns only, and {rows.name} has a tags column"
        )


def tags_labels(
    rows: Rows, j: int, separator: str, classes: tuple[str, ...] | None, options: Options
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """Return the positives of each row as CSR, the classes, and the rows of unknown tags.

    The positives are ``indptr``, ``indices``; the unknown rows a boolean mask.
    """
    cells = [row[j].strip() for row in rows.fields]
    unknown_rows = np.zeros(len(cells), dtype=bool)
    if options.unknown is not None:
        unknown_rows[:] = [cell == options.unknown.strip() for cell in cells]
    tags = [
        [] if unknown else [t.strip() for t in cell.split(separator) if t.strip()]
        for cell, unknown in zip(cells, unknown_rows, strict=True)
    ]
    _check_markers(rows, tags, options)
    if options.no_label is not None:
        tags = [[] if image == [options.no_label.strip()] else image for image in tags]
    if classes is None:
        classes = tuple(sorted({t for image in tags for t in image}))
        if not classes:
            raise ValueError(f"label table {rows.name}: no tag in column {rows.header[j]!r}")
        _warn_missing_markers(rows, j, tags, classes)
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
    return (
        np.array(indptr, dtype=np.int64),
        np.array(indices, dtype=np.int64),
        classes,
        unknown_rows,
    )


def _check_markers(rows: Rows, tags: list[list[str]], options: Options) -> None:
    """Refuse the ``unknown`` marker or the ``no_label`` tag beside another tag of one row."""
    for name in ("unknown", "no_label"):
        marker = getattr(options, name)
        if marker is None or not marker.strip():
            continue
        for r, image in enumerate(tags):
            if marker.strip() in image and len(image) > 1:
                raise ValueError(
                    f"{rows.where[r]}: {marker.strip()!r} (`{name}`) beside other tags "
                    f"{[t for t in image if t != marker.strip()]}; it must stand alone in its cell"
                )


def _warn_missing_markers(
    rows: Rows, j: int, tags: list[list[str]], classes: tuple[str, ...]
) -> None:
    """Warn about tags that look like a missing value and became classes."""
    for name in classes:
        if name.lower() not in _MISSING_MARKERS:
            continue
        hits = [r for r, image in enumerate(tags) if name in image]
        warnings.warn(
            f"{rows.where[hits[0]]}: the tag {name!r} in column {rows.header[j]!r} looks like a "
            f"missing value, and became a class ({len(hits)} row(s)); pass unknown={name!r} "
            f"to read those rows as unknown (-1), or classes=[...] naming {name!r} to keep it "
            "as a class",
            UserWarning,
            stacklevel=5,  # tags_labels, _read, the public function, its caller
        )


def refuse_unknown_rows(rows: Rows, unknown_rows: np.ndarray, marker: str | None) -> None:
    if unknown_rows.any():
        r = int(np.argmax(unknown_rows))
        raise ValueError(
            f"`unknown`: {int(unknown_rows.sum())} row(s) marked {marker!r} (first: "
            f"{rows.where[r]}), but the sparse tags form stores ones only, so a row cannot be "
            "unknown; read with sparse=False"
        )
