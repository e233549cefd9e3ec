"""Image lists: the official VOC-LT / COCO-LT training lists and user-given subsets.

The DB-loss repository (Wu et al., ECCV 2020) publishes the VOC-LT list as
``appendix/VOCdevkit/longtail2012/img_id.txt`` (VOC ids such as ``2008_000023``) and the COCO-LT
list as ``appendix/coco/longtail2017/img_id.pkl``, which despite its name is plain text with one
COCO image id per line. :func:`read_image_list` reads both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._images import read_ids

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
    return read_ids(path, "path")
