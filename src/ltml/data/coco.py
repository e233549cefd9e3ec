"""MS-COCO as a multi-label dataset (COCO-LT training set, val2017 test set).

Labels follow the long-tailed multi-label protocol (Wu et al., ECCV 2020): a category is positive
for an image that has an annotation of it with ``area > 0``, a box at least 1 pixel wide and high,
and neither ``iscrowd`` nor ``ignore`` set.
"""

from __future__ import annotations

import json
import math
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


class COCOMultiLabel(Dataset[tuple[Any, Tensor]]):
    """COCO images with one multi-hot label vector each, from an instances JSON file.

    The JSON is parsed at construction (no image is opened), so :attr:`labels` is ready for
    samplers, losses and :func:`~ltml.data.class_counts` before any training step.

    Parameters
    ----------
    images_dir : str or PathLike
        Folder of the images (e.g. ``train2017``), named by the JSON's ``file_name``.
    instances_json : str or PathLike
        COCO instances annotations (e.g. ``annotations/instances_train2017.json``).
    image_list : str, PathLike or sequence of int, optional
        COCO image ids to use, in this order: a text file with one id per line (e.g. the official
        COCO-LT ``img_id.pkl``, plain text despite its name; see
        :func:`~ltml.data.read_image_list`) or the ids. Default: every image of the JSON, by id.
    transform : callable, optional
        Applied to the PIL image (RGB) in ``__getitem__``.

    Attributes
    ----------
    labels : Tensor, shape (N, C), int64
        0 / 1 labels, C = number of categories (80 for COCO), in category-id order.
    image_ids : list of int
        COCO image ids, row order of :attr:`labels`.
    classes : tuple of str
        Category names in category-id order.

    Raises
    ------
    FileNotFoundError
        Missing JSON, image folder or image (the message names the path).
    ValueError
        Malformed JSON (a missing or mistyped field, a ``bbox`` not of 4 numbers, a repeated
        image or category id), an annotation of an unknown category, an image list entry that is
        not an integer or not in the JSON, an empty or repeated image list.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from PIL import Image
    >>> from ltml.data import COCOMultiLabel
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = pathlib.Path(tmp.name)
    >>> Image.new("RGB", (4, 4)).save(d / "a.jpg")
    >>> ann = {"images": [{"id": 7, "file_name": "a.jpg"}],
    ...        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    ...        "annotations": [{"image_id": 7, "category_id": 3, "area": 9.0,
    ...                         "bbox": [0, 0, 3, 3], "iscrowd": 0}]}
    >>> _ = (d / "instances.json").write_text(json.dumps(ann))
    >>> ds = COCOMultiLabel(d, d / "instances.json")
    >>> ds.classes, ds.labels.tolist()
    (('person', 'car'), [[0, 1]])
    >>> tmp.cleanup()
    >>> coco_lt = COCOMultiLabel("train2017", "instances_train2017.json",
    ...                          image_list="img_id.pkl")  # doctest: +SKIP
    """

    def __init__(
        self,
        images_dir: PathLike,
        instances_json: PathLike,
        image_list: ImageList | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        check_callable(transform, "transform", optional=True)
        self.transform = transform
        self._image_dir = as_path(images_dir, "images_dir")
        src = check_file(
            as_path(instances_json, "instances_json"), "instances_json", "COCO instances file"
        )
        data = _load_instances(src)
        categories = sorted(
            _records(data, "categories", src, id=int, name=str), key=lambda c: c["id"]
        )
        self.classes: tuple[str, ...] = tuple(c["name"] for c in categories)
        column = _unique_index(categories, "category", src)
        images = _records(data, "images", src, id=int, file_name=str)
        file_names = {im["id"]: im["file_name"] for im in images}
        _unique_index(images, "image", src)
        annotations = _records(data, "annotations", src, image_id=int, category_id=int)

        source = f"{src} (`instances_json`)"
        if image_list is None:
            self.image_ids: list[int] = sorted(file_names)
        else:
            ids, source = resolve_image_list(image_list)
            self.image_ids = [_as_image_id(i, source) for i in ids]
            absent = [i for i in self.image_ids if i not in file_names]
            if absent:
                raise ValueError(
                    f"{len(absent)} image id(s) from {source} are not in {src}, e.g. {absent[:3]}"
                )
        if not self.image_ids:
            raise ValueError(f"`instances_json`: COCO instances file {src} lists no image")
        self._file_names = [file_names[i] for i in self.image_ids]
        check_images_exist(self._image_dir, self._file_names, "images_dir", source)

        row = {image_id: r for r, image_id in enumerate(self.image_ids)}
        labels = torch.zeros(len(self.image_ids), len(self.classes), dtype=torch.int64)
        for ann in annotations:
            if ann["category_id"] not in column:
                raise ValueError(
                    f"`instances_json`: annotation {ann.get('id')!r} in {src} has unknown "
                    f"category_id {ann['category_id']!r}"
                )
            r = row.get(ann["image_id"])
            if r is not None and _is_positive(ann, src):
                labels[r, column[ann["category_id"]]] = 1
        self.labels = labels

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, i: int) -> Path:
        """Return the file of image ``i`` (what ``self[i]`` opens), e.g. to decode it elsewhere."""
        return Path(self._image_dir, self._file_names[i])

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        image = load_image(self.image_path(i), self.transform)
        return image, self.labels[i].to(torch.float32)


def _load_instances(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"`instances_json`: malformed COCO instances file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"`instances_json`: malformed COCO instances file {path}: expected a JSON object"
        )
    return data


def _records(data: dict[str, Any], key: str, src: Path, **fields: type) -> list[dict[str, Any]]:
    """Return the list ``data[key]`` of JSON objects, each with the given fields and types."""
    if key not in data:
        raise ValueError(
            f"`instances_json`: malformed COCO instances file {src}: missing field {key!r}"
        )
    records = data[key]
    if not isinstance(records, list):
        raise ValueError(
            f"`instances_json`: malformed COCO instances file {src}: {key!r} must be a list, "
            f"got {type(records).__name__}"
        )
    for record in records:
        for field, kind in fields.items():
            value = record.get(field) if isinstance(record, dict) else None
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(
                    f"`instances_json`: malformed COCO instances file {src}: an entry of {key!r} "
                    f"needs {field!r} of type {kind.__name__}, got {str(record)[:80]}"
                )
    return records


def _unique_index(records: list[dict[str, Any]], what: str, src: Path) -> dict[int, int]:
    """``{id: position}``; a repeated id would drop a record or mix two columns' labels."""
    index: dict[int, int] = {}
    for k, record in enumerate(records):
        if record["id"] in index:
            raise ValueError(
                f"`instances_json`: COCO instances file {src} lists {what} id {record['id']} "
                "more than once"
            )
        index[record["id"]] = k
    return index


def _as_image_id(entry: str, source: str) -> int:
    try:
        return int(entry)
    except ValueError:
        raise ValueError(f"COCO image id {entry!r} in {source} is not an integer") from None


def _is_positive(ann: dict[str, Any], src: Path) -> bool:
    """Apply the protocol's rule: a real, non-crowd, non-ignored box of at least 1x1 pixel."""
    bbox = ann.get("bbox", (0, 0, 0, 0))
    area = ann.get("area", 0)
    flags = (ann.get("iscrowd", 0), ann.get("ignore", 0))
    if not (
        isinstance(bbox, list | tuple)
        and len(bbox) == 4
        and all(_is_number(v) for v in bbox)
        and _is_number(area)
        and all(_is_number(f) for f in flags)
    ):
        raise ValueError(
            f"`instances_json`: malformed COCO instances file {src}: annotation "
            f"{ann.get('id')!r} needs a numeric 'area', 'iscrowd' / 'ignore' flags and a 'bbox' "
            f"of 4 numbers, got area={area!r}, bbox={bbox!r}"
        )
    return not any(flags) and area > 0 and bbox[2] >= 1 and bbox[3] >= 1


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
