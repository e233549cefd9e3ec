import json

import numpy as np
import pytest
import torch
from PIL import Image

from ltml.data import COCOMultiLabel

# category ids are not contiguous and not sorted in the file: the columns follow id order
CATEGORIES = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
IMAGES = [
    {"id": 42, "file_name": "000000000042.jpg", "colour": (200, 10, 10)},
    {"id": 7, "file_name": "000000000007.jpg", "colour": (10, 200, 10)},
    {"id": 99, "file_name": "000000000099.jpg", "colour": (10, 10, 200)},
]


def _ann(i, image_id, cat, area=50.0, bbox=(0, 0, 5, 10), **extra):
    return {
        "id": i,
        "image_id": image_id,
        "category_id": cat,
        "area": area,
        "bbox": list(bbox),
        **extra,
    }


ANNOTATIONS = [
    _ann(1, 42, 1),  # person: positive
    _ann(2, 42, 18, iscrowd=1),  # crowd: not positive
    _ann(3, 7, 3, area=0.0),  # zero area: not positive
    _ann(4, 7, 18, bbox=(0, 0, 0.5, 10)),  # box under 1 pixel wide: not positive
    _ann(5, 7, 18, bbox=(0, 0, 10, 0.9)),  # box under 1 pixel high: not positive
    _ann(6, 7, 1, bbox=(3, 3, 1, 1), area=1.0, iscrowd=0),  # exactly 1x1: positive
    _ann(7, 99, 3, ignore=1),  # ignore flag: not positive
    _ann(8, 99, 3),  # car: positive
    _ann(9, 99, 3),  # second car: still one label
    _ann(10, 12345, 18),  # an image not in the dataset: skipped
]
# rows in id order (7, 42, 99); columns person (1), car (3), dog (18)
EXPECTED = {7: [1, 0, 0], 42: [1, 0, 0], 99: [0, 1, 0]}


@pytest.fixture
def coco(tmp_path):
    images = tmp_path / "train2017"
    images.mkdir()
    for im in IMAGES:
        Image.new("RGB", (10, 7), im["colour"]).save(images / im["file_name"], quality=100)
    data = {
        "info": {},
        "images": [
            {k: v for k, v in im.items() if k != "colour"} | {"height": 7, "width": 10}
            for im in IMAGES
        ],
        "annotations": ANNOTATIONS,
        "categories": CATEGORIES,
    }
    js = tmp_path / "instances_train2017.json"
    js.write_text(json.dumps(data))
    return images, js


def test_labels_follow_protocol(coco):
    ds = COCOMultiLabel(*coco)
    assert ds.classes == ("person", "car", "dog")
    assert ds.image_ids == [7, 42, 99]
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [EXPECTED[i] for i in ds.image_ids]


@pytest.mark.parametrize(
    "make_list",
    [
        lambda d, ids: ids,
        lambda d, ids: [str(i) for i in ids],
        lambda d, ids: _write(d / "img_id.pkl", "\n".join(map(str, ids)) + "\n"),
    ],
)
def test_image_list_order(coco, make_list):
    ids = [99, 7]
    ds = COCOMultiLabel(*coco, image_list=make_list(coco[1].parent, ids))
    assert ds.image_ids == ids
    assert ds.labels.tolist() == [EXPECTED[i] for i in ids]


def _write(path, text):
    path.write_text(text)
    return path


def test_getitem_image_label_and_transform(coco):
    ds = COCOMultiLabel(
        *coco, transform=lambda im: torch.tensor(np.asarray(im), dtype=torch.float32)
    )
    colours = {im["id"]: im["colour"] for im in IMAGES}
    for i, image_id in enumerate(ds.image_ids):
        image, label = ds[i]
        assert image.shape == (7, 10, 3)
        np.testing.assert_allclose(image.mean(dim=(0, 1)).numpy(), colours[image_id], atol=3)
        assert label.dtype == torch.float32
        assert label.tolist() == EXPECTED[image_id]


def test_labels_without_opening_images(coco, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("an image was opened during construction")

    monkeypatch.setattr(Image, "open", fail)
    assert COCOMultiLabel(*coco).labels.shape == (3, 3)


def _rewrite(js, change):
    data = json.loads(js.read_text())
    change(data)
    js.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            lambda d: d.pop("categories"),
            ValueError,
            r"malformed COCO instances file .*json: missing field 'categories'",
        ),
        (
            lambda d: d["annotations"].append(_ann(11, 7, 77)),
            ValueError,
            r"annotation 11 in .*json has unknown category_id 77",
        ),
        (lambda d: d.update(images=[]), ValueError, r"instances file .*json lists no image"),
        (
            lambda d: d["images"].append({"id": 5, "file_name": "gone.jpg"}),
            FileNotFoundError,
            r"not found in .*train2017: .*gone\.jpg",
        ),
    ],
)
def test_corrupt_json_raises_naming_file(coco, change, error, match):
    _rewrite(coco[1], change)
    with pytest.raises(error, match=match):
        COCOMultiLabel(*coco)


def test_malformed_json(coco):
    coco[1].write_text('{"images": [')
    with pytest.raises(
        ValueError, match=r"malformed COCO instances file .*instances_train2017\.json"
    ):
        COCOMultiLabel(*coco)


@pytest.mark.parametrize(
    ("image_list", "error", "match"),
    [
        (
            [7, 1234],
            ValueError,
            r"1 image id\(s\) from `image_list` are not in .*json, e.g. \[1234\]",
        ),
        (["7", "abc"], ValueError, r"COCO image id 'abc' in `image_list` is not an integer"),
        ([], ValueError, r"`image_list` is empty"),
        ([7, 7], ValueError, r"lists id '7' more than once"),
    ],
)
def test_bad_image_list(coco, image_list, error, match):
    with pytest.raises(error, match=match):
        COCOMultiLabel(*coco, image_list=image_list)


def test_missing_paths(coco, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"instances file .*nope\.json not found"):
        COCOMultiLabel(coco[0], tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match=r"image folder .*val2017 not found"):
        COCOMultiLabel(tmp_path / "val2017", coco[1])
