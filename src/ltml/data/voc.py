"""Pascal VOC as a multi-label dataset (VOC-LT training set, VOC2007 test set).

Labels follow the long-tailed multi-label protocol (Wu et al., ECCV 2020): every ``<object>`` of
an image's XML annotation makes its class positive, "difficult" objects included.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .._validation import as_path, check_callable, check_file
from ._images import check_images_exist, load_image, resolve_image_list
from .image_list import (
    ImageList,
    PathLike,
)

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


class VOCMultiLabel(Dataset[tuple[Any, Tensor]]):
    """Pascal VOC images with one multi-hot label vector each.

    Reads the standard ``VOCdevkit/VOC<year>/{JPEGImages, Annotations, ImageSets/Main}`` layout.
    All XML annotations are parsed at construction (no image is opened), so :attr:`labels` is
    ready for samplers, losses and :func:`~ltml.data.class_counts` before any training step.

    Parameters
    ----------
    root : str or PathLike
        The folder holding ``VOCdevkit``; ``VOCdevkit`` itself or ``VOC<year>`` are accepted too.
    image_set : str
        Split file ``ImageSets/Main/<image_set>.txt`` (``"trainval"``, ``"train"``, ``"val"``,
        ``"test"``); ignored when ``image_list`` is given.
    image_list : str, PathLike or sequence of str, optional
        Image ids to use instead, in this order: a text file with one id per line (e.g. the
        official VOC-LT ``img_id.txt``, see :func:`~ltml.data.read_image_list`) or the ids.
    transform : callable, optional
        Applied to the PIL image (RGB) in ``__getitem__``.
    year : str
        ``"2012"`` for VOC-LT training, ``"2007"`` for its test set.

    Attributes
    ----------
    labels : Tensor, shape (N, 20), int64
        0 / 1 labels in :attr:`classes` order.
    image_ids : list of str
        Image ids, row order of :attr:`labels`.
    classes : tuple of str
        The 20 VOC classes in the standard alphabetical order.
    root : Path
        The ``VOC<year>`` folder found from the ``root`` given; its parent is the
        ``VOCdevkit`` (where VOC-LT's ``longtail2012/img_id.txt`` is usually kept).

    Raises
    ------
    FileNotFoundError
        Missing root, split file, XML file or image (the message names the path).
    ValueError
        Malformed XML, an unknown class name, an empty or repeated image list.

    Examples
    --------
    >>> from ltml.data import VOCMultiLabel
    >>> VOCMultiLabel.classes[:3]
    ('aeroplane', 'bicycle', 'bird')
    >>> voc_lt = VOCMultiLabel("data", image_list="img_id.txt")  # doctest: +SKIP
    >>> voc_lt.labels.shape  # doctest: +SKIP
    torch.Size([1142, 20])
    """

    classes: tuple[str, ...] = VOC_CLASSES

    def __init__(
        self,
        root: PathLike,
        image_set: str = "trainval",
        image_list: ImageList | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        year: str = "2012",
    ) -> None:
        if not isinstance(year, str):
            raise TypeError(f"`year` must be a str such as '2012', got {type(year).__name__}")
        if not isinstance(image_set, str):
            raise TypeError(
                f"`image_set` must be a str such as 'trainval', got {type(image_set).__name__}"
            )
        check_callable(transform, "transform", optional=True)
        self.root = _find_voc_dir(as_path(root, "root"), year)
        if image_list is None:
            split_file = self.root / "ImageSets" / "Main" / f"{image_set}.txt"
            check_file(split_file, "image_set", "VOC split file")
            self.image_ids, source = resolve_image_list(split_file, "image_set")
        else:
            self.image_ids, source = resolve_image_list(image_list)
        self.transform = transform
        self._image_dir = self.root / "JPEGImages"
        check_images_exist(self._image_dir, [f"{i}.jpg" for i in self.image_ids], "root", source)
        index = {name: k for k, name in enumerate(self.classes)}
        labels = torch.zeros(len(self.image_ids), len(self.classes), dtype=torch.int64)
        for row, image_id in enumerate(self.image_ids):
            xml = self.root / "Annotations" / f"{image_id}.xml"
            labels[row, _xml_classes(xml, index)] = 1
        self.labels = labels

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, i: int) -> Path:
        """Return the file of image ``i`` (what ``self[i]`` opens), e.g. to decode it elsewhere."""
        return self._image_dir / f"{self.image_ids[i]}.jpg"

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        image = load_image(self.image_path(i), self.transform)
        return image, self.labels[i].to(torch.float32)


def _find_voc_dir(root: Path, year: str) -> Path:
    """Locate ``VOC<year>`` from the folder above ``VOCdevkit``, ``VOCdevkit`` or itself."""
    candidates = (root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}", root)
    for c in candidates:
        if (c / "Annotations").is_dir():
            return c
    raise FileNotFoundError(
        f"`root`: VOC{year} not found under {root}: expected an Annotations folder in one of "
        + ", ".join(str(c) for c in candidates)
    )


def _xml_classes(xml: Path, index: dict[str, int]) -> list[int]:
    """Class indices of every ``<object>`` in one annotation file ("difficult" included)."""
    check_file(xml, "root", "VOC annotation")
    try:
        tree = ET.parse(xml)
    except ET.ParseError as err:
        raise ValueError(f"`root`: malformed VOC annotation {xml}: {err}") from None
    found = []
    for obj in tree.getroot().findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in index:
            raise ValueError(
                f"`root`: unknown class {name!r} in VOC annotation {xml}; "
                "expected one of the 20 VOC "
                "classes (aeroplane ... tvmonitor)"
            )
        found.append(index[name])
    return found
