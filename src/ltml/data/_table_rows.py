"""Reading a label table's rows: a CSV / TSV file (gzip or not) or a DataFrame, to cells.

The first half of :func:`~ltml.data.read_label_table`: text to a header and rows of strings,
checked (a header and rows of one length, no repeated column, paths that stay inside the image
root), each row remembering where it came from for the errors. :mod:`._table_labels` turns the
cells into labels.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import posixpath
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._validation import as_path, check_file
from .image_list import PathLike

TSV_SUFFIXES = (".tsv", ".tab")


class Rows(NamedTuple):
    name: str  # the file, or "the DataFrame", for messages
    header: list[str]
    where: list[str]  # "labels.csv, line 7": where each row came from
    fields: list[list[str]]


def is_dataframe(source: Any) -> bool:
    return hasattr(source, "columns") and hasattr(source, "itertuples")


def file_rows(path: PathLike, delimiter: str | None) -> Rows:
    p = check_file(as_path(path, "source"), "source", "label table")
    raw = p.read_bytes()
    suffix = p.suffix.lower()
    if raw[:2] == b"\x1f\x8b":  # gzip's magic number
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"label table {p}: a gzip file that cannot be read ({err})") from None
        suffix = Path(p.stem).suffix.lower()  # labels.tsv.gz reads as a .tsv
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
        tabbed = suffix in TSV_SUFFIXES or ("\t" in first and "," not in first)
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
    return checked_rows(Rows(str(p), header, where, fields))


def dataframe_rows(frame: Any) -> Rows:
    header = [str(c).strip() for c in frame.columns]
    fields = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    where = [f"the DataFrame, row {i}" for i in range(len(fields))]
    return checked_rows(Rows("the DataFrame", header, where, fields))


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


def checked_rows(rows: Rows) -> Rows:
    if not rows.fields:
        raise ValueError(f"label table {rows.name} has a header but no row")
    if len(rows.header) > 1 and rows.header[-1] == "":
        rows = _without_trailing_column(rows)
    seen: set[str] = set()
    for name in rows.header:
        if name in seen:
            raise ValueError(f"label table {rows.name} has column {name!r} twice in its header")
        seen.add(name)
    for where, row in zip(rows.where, rows.fields, strict=True):
        if len(row) != len(rows.header):
            raise ValueError(f"{where}: {len(row)} field(s), but the header has {len(rows.header)}")
    return rows


def _without_trailing_column(rows: Rows) -> Rows:
    """Drop the nameless last column of a header that ends in a delimiter, and its empty cells.

    A row may end in the delimiter too (the column's empty cell) or not; a value in that column
    is an error, since nothing says what it is.
    """
    header = rows.header[:-1]
    fields = []
    for where, row in zip(rows.where, rows.fields, strict=True):
        if len(row) == len(rows.header):
            if row[-1].strip():
                raise ValueError(
                    f"{where}: {row[-1].strip()!r} under the header's last column, which has no "
                    "name (the header ends in a delimiter); name the column"
                )
            row = row[:-1]
        fields.append(row)
    return Rows(rows.name, header, rows.where, fields)


def column(rows: Rows, name: str, argument: str) -> int:
    if name not in rows.header:
        raise ValueError(
            f"`{argument}`: no column {name!r} in {rows.name}; its header is {rows.header}"
        )
    return rows.header.index(name)


def image_paths(rows: Rows, j: int) -> list[str]:
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
