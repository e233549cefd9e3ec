"""Image lists: the official VOC-LT / COCO-LT training lists and user-given subsets.

The DB-loss repository (Wu et al., ECCV 2020) publishes the VOC-LT list as
``appendix/VOCdevkit/longtail2012/img_id.txt`` (VOC ids such as ``2008_000023``) and the COCO-LT
list as ``appendix/coco/longtail2017/img_id.pkl``, which despite its name is plain text with one
COCO image id per line. :func:`read_image_list` reads both.
"""

from __future__ import annotations

import os
import pickletools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_path, check_file

PathLike = str | os.PathLike[str]
ImageList = PathLike | Sequence[str] | Sequence[int]


def read_image_list(path: PathLike) -> list[str]:
    r"""Read an image list: one image id per line, blank lines and surrounding spaces ignored.

    Parameters
    ----------
    path : str or PathLike
        A plain-text list, e.g. the official ``img_id.txt`` (VOC-LT) or ``img_id.pkl``
        (COCO-LT, plain text despite the suffix). A UTF-8 byte-order mark is skipped.

    Returns
    -------
    list of str
        The ids in file order (COCO ids stay strings; :class:`COCOMultiLabel` converts them).

    Raises
    ------
    FileNotFoundError
        The file does not exist, or is a directory.
    TypeError
        ``path`` is not a ``str`` or ``os.PathLike`` (e.g. bytes).
    ValueError
        The file is a pickle (of any protocol: never unpickled, for safety), binary (control
        characters such as NUL bytes), not UTF-8, empty, has an id with spaces inside, or lists
        an id twice.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ltml.data import read_image_list
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = pathlib.Path(d) / "img_id.txt"
    ...     _ = f.write_text("2008_000023\n2008_000028\n\n")
    ...     read_image_list(f)
    ['2008_000023', '2008_000028']
    """
    return _read_ids(path, "path")


def _read_ids(path: Any, name: str) -> list[str]:
    p = check_file(as_path(path, name), name, "image list")
    raw = p.read_bytes()
    source = f"{p} (`{name}`)"
    if _is_pickle(raw):
        raise ValueError(
            f"image list {source} is a pickle; ltml reads plain-text lists (one id per line) "
            "and never unpickles files: write the ids one per line into a text file"
        )
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first id
    except UnicodeDecodeError as err:
        raise ValueError(f"image list {source} is not UTF-8 text: {err}") from None
    return _check_ids([line.strip() for line in text.splitlines() if line.strip()], source)


def _is_pickle(raw: bytes) -> bool:
    """Whether ``raw`` parses as one whole pickle stream (parsed by opcode, never executed)."""
    try:
        ops = [(opcode.name, pos or 0) for opcode, _, pos in pickletools.genops(raw)]
    except Exception:
        return False
    return bool(ops) and ops[-1][0] == "STOP" and not raw[ops[-1][1] + 1 :].strip()


def _resolve_image_list(image_list: Any, name: str = "image_list") -> tuple[list[str], str]:
    """Return the ids of a path or a sequence, with a description of the source for errors."""
    if isinstance(image_list, str | os.PathLike | bytes):
        path = as_path(image_list, name)
        return _read_ids(path, name), f"{path} (`{name}`)"
    if not isinstance(image_list, Sequence):
        raise TypeError(
            "`image_list` must be a path or a sequence of image ids (str or int), "
            f"got {type(image_list).__name__}"
        )
    odd = next(
        (i for i in image_list if not isinstance(i, str | int | np.integer) or isinstance(i, bool)),
        None,
    )
    if odd is not None:
        raise TypeError(
            f"`image_list` must hold image ids (str or int), got an element {odd!r} "
            f"of type {type(odd).__name__}"
        )
    ids = [str(i).strip() for i in image_list]
    return _check_ids(ids, "`image_list`"), "`image_list`"


def _check_ids(ids: list[str], source: str) -> list[str]:
    """Reject an empty list, ids that cannot be file names, and repeated ids.

    A repeat would silently double an image's weight; control characters mean a binary file.
    """
    if not ids:
        raise ValueError(f"image list {source} is empty")
    odd = next((i for i in ids if not i.isprintable() or any(c.isspace() for c in i)), None)
    if odd is not None:
        raise ValueError(
            f"image list {source} has an id with spaces or control characters: {odd[:40]!r} "
            "(expected one id per line of a text file)"
        )
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ValueError(f"image list {source} lists id {repeated[0]!r} more than once")
    return ids
