"""Reading the OpenImages label files: class lists, descriptions and label rows, vectorised.

The rules that combine the rows into labels are in :mod:`ltml.data.openimages`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._validation import as_class_names, as_path, check_file
from ._fastcsv import read_rows, where
from .image_list import PathLike

HEADER = "ImageID,Source,LabelName,Confidence"
_COLUMNS = ("ImageID", "LabelName", "Confidence")
_DESCRIPTIONS_HEADER = ["LabelName", "DisplayName"]


class LabelRows(NamedTuple):
    """The rows of one label file kept (their class is listed): ImageID, column, verdict."""

    path: Path
    ids: np.ndarray  # (n,) byte strings
    cls: np.ndarray  # (n,) int32 columns
    verdicts: np.ndarray  # (n,) int8: 1 / 0
    dropped: int  # rows of a class not listed


class ClassLookup:
    """LabelName bytes to column, vectorised: a binary search in the sorted names."""

    def __init__(self, names: tuple[str, ...]) -> None:
        encoded = np.array([n.encode() for n in names])
        self.order = np.argsort(encoded, kind="stable")
        self.sorted = encoded[self.order]

    def __call__(self, names: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(self.sorted, names), len(self.sorted) - 1)
        return np.where(self.sorted[at] == names, self.order[at], -1).astype(np.int32)


def read_label_rows(
    source: PathLike, argument: str, lookup: ClassLookup, threshold: float | None
) -> LabelRows:
    """Read a label file; ``threshold`` None: human verdicts (0 / 1), else machine scores."""
    path = check_file(as_path(source, argument), argument, "label file")
    # Each list starts with an empty array: a file of a header alone has rows of none.
    ids, cls, verdicts = [np.array([], "S1")], [np.array([], np.int32)], [np.array([], np.int8)]
    dropped = 0
    for rows in read_rows(path, _COLUMNS, argument, HEADER):
        image, name, confidence = rows.fields
        check_ids(image, rows.lines, argument, path)
        empty = name == b""
        if empty.any():
            line = int(rows.lines[np.argmax(empty)])
            raise ValueError(f"{where(argument, path, line)}: empty LabelName")
        k = lookup(name)
        keep = k >= 0
        dropped += len(k) - int(keep.sum())
        if threshold is None:
            v = human_verdicts(confidence, rows.lines, argument, path)
        else:
            v = np.ones(len(k), dtype=np.int8)
            keep &= machine_scores(confidence, rows.lines, argument, path) >= threshold
        ids.append(image[keep])
        cls.append(k[keep])
        verdicts.append(v[keep])
    if not ids:  # a header and no row
        ids, cls, verdicts = (
            [np.array([], dtype="S1")],
            [np.array([], np.int32)],
            [np.array([], np.int8)],
        )
    return LabelRows(
        path, np.concatenate(ids), np.concatenate(cls), np.concatenate(verdicts), dropped
    )


def check_ids(ids: np.ndarray, lines: np.ndarray, argument: str, path: Path) -> None:
    r"""Check that each ImageID can name a file: printable ASCII without spaces, ``/``, ``\``."""
    width = ids.dtype.itemsize
    b = ids.view(np.uint8).reshape(len(ids), width)
    inside = np.arange(width) < np.char.str_len(ids)[:, None]
    odd = (b <= 32) | (b >= 127) | (b == ord("/")) | (b == ord("\\"))
    bad = (inside & odd).any(1) | (ids == b"") | (ids == b".") | (ids == b"..")
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"{where(argument, path, int(lines[k]))}: ImageID {ids[k].decode(errors='replace')!r} "
            "cannot name an image file: expected printable ASCII without spaces, '/' or '\\'"
        )


def human_verdicts(
    confidence: np.ndarray, lines: np.ndarray, argument: str, path: Path
) -> np.ndarray:
    present = confidence == b"1"
    bad = ~present & (confidence != b"0")
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"{where(argument, path, int(lines[k]))}: Confidence "
            f"{confidence[k].decode(errors='replace')!r} is not a human verdict: expected 1 "
            "(verified present) or 0 (verified absent)"
        )
    return np.asarray(present, dtype=np.int8)


def machine_scores(
    confidence: np.ndarray, lines: np.ndarray, argument: str, path: Path
) -> np.ndarray:
    try:
        scores = confidence.astype(np.float64)
    except ValueError:  # text that is not a number: find it, one by one (error path only)
        scores = np.array([number(c) for c in confidence.tolist()])
    bad = ~((scores >= 0) & (scores <= 1))  # NaN too
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"{where(argument, path, int(lines[k]))}: Confidence "
            f"{confidence[k].decode(errors='replace')!r} is not a score in [0, 1]"
        )
    return scores


def number(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_text(path: Path, argument: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{where(argument, path, line)}: not UTF-8 text") from None


def read_classes(classes: PathLike | Sequence[str]) -> tuple[str, ...]:
    """Read the LabelNames: a trainable-classes file (one per line) or a sequence."""
    if not isinstance(classes, str | os.PathLike):
        return as_class_names(classes, "classes")
    path = check_file(as_path(classes, "classes"), "classes", "trainable-classes file")
    names = []
    for n, line in enumerate(read_text(path, "classes").splitlines(), 1):
        name = line.strip()
        if "," in name or any(c.isspace() for c in name):
            raise ValueError(
                f"{where('classes', path, n)}: {name[:40]!r} is not a LabelName: expected one "
                "per line, e.g. /m/01g317"
            )
        if name:
            names.append(name)
    return as_class_names(names, "classes")


def display_names(source: PathLike, label_names: tuple[str, ...]) -> tuple[str, ...]:
    """Read the DisplayName of each LabelName from ``LabelName,DisplayName`` rows."""
    argument = "class_descriptions"
    path = check_file(as_path(source, argument), argument, "class-descriptions file")
    reader = csv.reader(io.StringIO(read_text(path, argument), newline=""), strict=True)
    names: dict[str, str] = {}
    try:
        for row in reader:
            if not row or (reader.line_num == 1 and row == _DESCRIPTIONS_HEADER):
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{where(argument, path, reader.line_num)}: {len(row)} field(s); expected "
                    "LabelName,DisplayName"
                )
            label, display = row[0].strip(), row[1].strip()
            if names.setdefault(label, display) != display:
                raise ValueError(
                    f"{where(argument, path, reader.line_num)}: LabelName {label!r} has two "
                    f"DisplayNames, {names[label]!r} and {display!r}"
                )
    except csv.Error as err:
        raise ValueError(f"{where(argument, path, reader.line_num)}: malformed {err}") from None
    missing = [n for n in label_names if n not in names]
    if missing:
        raise ValueError(
            f"{where(argument, path)} has no DisplayName for {len(missing)} class(es) of "
            f"`classes`, e.g. {missing[0]!r}"
        )
    return tuple(names[n] for n in label_names)
