"""A vectorised reader of large plain CSV files: millions of rows, no Python object per row.

Plain: a header row, comma-separated fields without quotes, one record per line (LF or CRLF
endings; blank lines are skipped). The image-level label files of OpenImages (20M+ rows) are such
files. The file is read in blocks of :data:`BLOCK` bytes; numpy finds the line ends and commas of
a block and copies each wanted field into a fixed-width byte-string array (``S`` dtype).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

BLOCK = 1 << 25  # 32 MiB: bounds each block's temporaries to a few hundred MiB
_NL, _CR, _COMMA, _QUOTE = 10, 13, 44, 34


class Rows(NamedTuple):
    """The rows of one block: their file lines and the wanted fields."""

    lines: np.ndarray
    """``(n,)`` int64: line number of each row in the file (the header is line 1)."""
    fields: list[np.ndarray]
    """One ``(n,)`` byte-string array per wanted column, in the order asked."""


def where(argument: str, path: Path, line: int | None = None) -> str:
    """Start an error message: the argument, the file and the line."""
    return f"`{argument}`: {path}" + ("" if line is None else f", line {line}")


def read_rows(
    path: Path, columns: Sequence[str], argument: str, header_hint: str
) -> Iterator[Rows]:
    """Yield the rows of ``path`` block by block, with the fields of ``columns`` (by name).

    ``argument`` names the file in errors; ``header_hint`` is the header the errors expect.
    Raises ``ValueError`` naming the file and line: an empty file, a header that is not UTF-8,
    lacks a column or repeats one, a row with another number of fields, a quoted field.
    """
    with path.open("rb") as f:
        header = _header(f.readline(), path, argument, header_hint)
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(
                f"{where(argument, path, 1)}: no column {missing[0]!r} in the header "
                f"{','.join(header)!r}; expected {header_hint!r}"
            )
        wanted = [header.index(c) for c in columns]
        line, rest = 2, b""
        while block := f.read(BLOCK):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                yield _parse(block[:cut], line, len(header), wanted, (argument, path))
                line += block.count(b"\n", 0, cut)
        if rest:  # no line end at the end of the file
            yield _parse(rest + b"\n", line, len(header), wanted, (argument, path))


def _header(raw: bytes, path: Path, argument: str, hint: str) -> list[str]:
    try:
        text = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(
            f"{where(argument, path, 1)}: the header is not UTF-8 text; expected {hint!r}"
        ) from None
    if not text.strip():
        raise ValueError(f"{where(argument, path)} is empty: expected the header {hint!r}")
    names = [name.strip() for name in text.split(",")]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise ValueError(f"{where(argument, path, 1)}: column {repeated!r} is in the header twice")
    return names


def _parse(
    raw: bytes, first_line: int, ncols: int, wanted: list[int], source: tuple[str, Path]
) -> Rows:
    a = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(a == _NL)
    starts = np.concatenate(([0], ends[:-1] + 1))
    stops = ends - (a[ends - 1] == _CR)  # a[-1] is a line end, never CR: safe for ends[0] == 0
    lines = first_line + np.arange(len(ends))
    filled = stops > starts
    if not filled.all():  # blank lines
        starts, stops, lines = starts[filled], stops[filled], lines[filled]
    quote = raw.find(b'"')
    if quote >= 0:
        line = first_line + raw.count(b"\n", 0, quote)
        raise ValueError(
            f"{where(*source, line)}: a quoted field; expected plain fields (no quotes), "
            "as in the official files"
        )
    commas = np.flatnonzero(a == _COMMA)
    counts = np.searchsorted(commas, stops) - np.searchsorted(commas, starts)
    wrong = counts != ncols - 1
    if wrong.any():
        k = int(np.argmax(wrong))
        raise ValueError(
            f"{where(*source, int(lines[k]))}: {int(counts[k]) + 1} field(s), "
            f"but the header has {ncols}"
        )
    bounds = commas.reshape(len(lines), ncols - 1)  # every row has exactly ncols - 1 commas
    fields = []
    for j in wanted:
        begin = starts if j == 0 else bounds[:, j - 1] + 1
        end = stops if j == ncols - 1 else bounds[:, j]
        fields.append(_copy_field(a, begin, end))
    return Rows(lines, fields)


def _copy_field(a: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Copy the byte ranges ``[begin, end)`` of ``a`` into an ``S`` array (NUL-padded)."""
    length = end - begin
    width = max(int(length.max(initial=0)), 1)
    out = np.zeros((len(begin), width), dtype=np.uint8)
    for k in range(width):  # one byte column at a time: no (n, width) index array
        has = length > k
        if has.all():
            out[:, k] = a[begin + k]
        else:
            out[has, k] = a[begin[has] + k]
    return out.view(f"S{width}").ravel()
