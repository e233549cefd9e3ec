"""Image files and image lists: what the datasets of :mod:`ltml.data` share.

The loader, the existence check, and the reading of image lists (a text file of ids, or a
sequence of ids) with their checks.
"""

from __future__ import annotations

import os
import pickletools
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._validation import as_path, check_file


def load_image(
    path: Path,
    transform: Callable[[Any], Any] | None,
    loader: Callable[[Path], Any] | None = None,
) -> Any:
    """Open an image with ``loader`` (default: PIL as RGB, file closed), apply ``transform``."""
    if loader is None:
        try:
            with Image.open(path) as im:
                image: Any = im.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            # PIL's message ("image file is truncated") does not say which file.
            kind = OSError if isinstance(err, OSError) else ValueError
            raise kind(f"image {path} cannot be read: {err}") from err
    else:
        image = loader(path)
    return image if transform is None else transform(image)


def check_images_exist(folder: Path, file_names: Sequence[str], name: str, source: str) -> None:
    """Raise naming the missing files and where they were listed; one directory listing."""
    if not folder.is_dir():
        raise FileNotFoundError(f"`{name}`: image folder {folder} not found")
    present = set(os.listdir(folder))
    missing = [f for f in file_names if f not in present]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(
            f"`{name}`: {len(missing)} image(s) listed by {source} not found in {folder}: "
            + ", ".join(str(folder / f) for f in missing[:3])
            + more
        )


def read_ids(path: Any, name: str) -> list[str]:
    p = check_file(as_path(path, name), name, "image list")
    raw = p.read_bytes()
    source = f"{p} (`{name}`)"
    if is_pickle(raw):
        raise ValueError(
            f"image list {source} is a pickle; ltml reads plain-text lists (one id per line) "
            "and never unpickles files: write the ids one per line into a text file"
        )
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first id
    except UnicodeDecodeError as err:
        raise ValueError(f"image list {source} is not UTF-8 text: {err}") from None
    return check_ids([line.strip() for line in text.splitlines() if line.strip()], source)


def is_pickle(raw: bytes) -> bool:
    """Whether ``raw`` parses as one whole pickle stream (parsed by opcode, never executed)."""
    try:
        ops = [(opcode.name, pos or 0) for opcode, _, pos in pickletools.genops(raw)]
    except Exception:
        return False
    return bool(ops) and ops[-1][0] == "STOP" and not raw[ops[-1][1] + 1 :].strip()


def resolve_image_list(image_list: Any, name: str = "image_list") -> tuple[list[str], str]:
    """Return the ids of a path or a sequence, with a description of the source for errors."""
    if isinstance(image_list, str | os.PathLike | bytes):
        path = as_path(image_list, name)
        return read_ids(path, name), f"{path} (`{name}`)"
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
    return check_ids(ids, "`image_list`"), "`image_list`"


def check_ids(ids: list[str], source: str) -> list[str]:
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
