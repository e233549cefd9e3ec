"""Image lists: the official VOC-LT / COCO-LT training lists and user-given subsets.

The DB-loss repository (Wu et al., ECCV 2020) publishes the VOC-LT list as
``appendix/VOCdevkit/longtail2012/img_id.txt`` (VOC ids such as ``2008_000023``) and the COCO-LT
list as ``appendix/coco/longtail2017/img_id.pkl``, which despite its name is plain text with one
COCO image id per line. :func:`read_image_list` reads both.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

PathLike = str | os.PathLike[str]
ImageList = PathLike | Sequence[str] | Sequence[int]

# Every pickle protocol >= 2 starts with this opcode byte; a text id list never does.
_PICKLE_PROTO = b"\x80"


def read_image_list(path: PathLike) -> list[str]:
    r"""Read an image list: one image id per line, blank lines and surrounding spaces ignored.

    Parameters
    ----------
    path : str or PathLike
        A plain-text list, e.g. the official ``img_id.txt`` (VOC-LT) or ``img_id.pkl``
        (COCO-LT, plain text despite the suffix).

    Returns
    -------
    list of str
        The ids in file order (COCO ids stay strings; :class:`COCOMultiLabel` converts them).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is binary (e.g. a real pickle: not read, for safety), not UTF-8, empty, or
        lists an id twice.

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
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image list {p} not found")
    raw = p.read_bytes()
    if raw.startswith(_PICKLE_PROTO):
        raise ValueError(
            f"image list {p} is a binary pickle; ltml reads plain-text lists (one id per line) "
            "and never unpickles files: write the ids one per line into a text file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"image list {p} is not UTF-8 text: {err}") from None
    return _check_ids([line.strip() for line in text.splitlines() if line.strip()], str(p))


def _resolve_image_list(image_list: ImageList) -> tuple[list[str], str]:
    """Return the ids of a path or a sequence, with a description of the source for errors."""
    if isinstance(image_list, (str, os.PathLike)):
        return read_image_list(image_list), str(image_list)
    ids = [str(i).strip() for i in image_list]
    return _check_ids(ids, "`image_list`"), "`image_list`"


def _check_ids(ids: list[str], source: str) -> list[str]:
    """Reject an empty list or repeated ids (a repeat would silently double an image's weight)."""
    if not ids:
        raise ValueError(f"image list {source} is empty")
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ValueError(f"image list {source} lists id {repeated[0]!r} more than once")
    return ids


def _check_images_exist(folder: Path, file_names: Sequence[str]) -> None:
    """Raise naming the missing files; one directory listing instead of a stat per image."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} not found")
    present = set(os.listdir(folder))
    missing = [f for f in file_names if f not in present]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(
            f"{len(missing)} image(s) not found in {folder}: "
            + ", ".join(str(folder / f) for f in missing[:3])
            + more
        )


def _load_image(path: Path, transform: Callable[[Image.Image], Any] | None) -> Any:
    """Open an image as RGB (closing the file) and apply ``transform``: every dataset's loader."""
    with Image.open(path) as im:
        image: Any = im.convert("RGB")
    return image if transform is None else transform(image)
