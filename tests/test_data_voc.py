import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ltml.data import VOC_CLASSES, VOCMultiLabel, read_image_list

# id -> (objects as (name, difficult), colour of its image)
IMAGES = {
    "2008_000001": ([("person", 0), ("dog", 1), ("person", 0)], (255, 0, 0)),
    "2008_000002": ([("tvmonitor", 1)], (0, 255, 0)),
    "2009_000003": ([("aeroplane", 0), ("cow", 0), (" sheep ", 1)], (0, 0, 255)),
    "2010_000004": ([], (9, 9, 9)),
}


def _xml(objects):
    objs = "".join(
        f"<object><name>{n}</name><pose>Left</pose><difficult>{d}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
        "<part><name>head</name></part></object>"
        for n, d in objects
    )
    return f"<annotation><folder>VOC2012</folder><size><width>8</width></size>{objs}</annotation>"


@pytest.fixture
def voc_root(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    for image_id, (objects, colour) in IMAGES.items():
        Image.new("RGB", (8, 6), colour).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=100)
        (voc / "Annotations" / f"{image_id}.xml").write_text(_xml(objects))
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(IMAGES) + "\n")
    (voc / "ImageSets" / "Main" / "train.txt").write_text("2009_000003\n2008_000001\n")
    return tmp_path


def _expected(ids):
    y = np.zeros((len(ids), 20), dtype=np.int64)
    for r, image_id in enumerate(ids):
        for name, _ in IMAGES[image_id][0]:
            y[r, VOC_CLASSES.index(name.strip())] = 1
    return y


def test_classes_standard_order():
    assert len(VOC_CLASSES) == 20
    assert list(VOC_CLASSES) == sorted(VOC_CLASSES)
    assert VOCMultiLabel.classes == VOC_CLASSES


@pytest.mark.parametrize("level", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_labels_from_xml_difficult_included(voc_root, level):
    ds = VOCMultiLabel(voc_root / level)
    assert ds.image_ids == list(IMAGES)
    assert ds.labels.dtype == torch.int64
    np.testing.assert_array_equal(ds.labels.numpy(), _expected(list(IMAGES)))


@pytest.mark.parametrize(
    "make_list",
    [
        lambda root, ids: ids,
        lambda root, ids: _write(root / "img_id.txt", "\n".join(ids) + "\n\n"),
        lambda root, ids: str(_write(root / "img_id.txt", "  " + "\n".join(ids))),
    ],
)
def test_image_list_overrides_image_set(voc_root, make_list):
    ids = ["2010_000004", "2008_000002", "2008_000001"]
    ds = VOCMultiLabel(voc_root, image_set="no-such-split", image_list=make_list(voc_root, ids))
    assert ds.image_ids == ids
    np.testing.assert_array_equal(ds.labels.numpy(), _expected(ids))


def _write(path, text):
    path.write_text(text)
    return path


def test_image_set(voc_root):
    ds = VOCMultiLabel(voc_root, image_set="train")
    assert ds.image_ids == ["2009_000003", "2008_000001"]
    assert len(ds) == 2


def test_getitem_image_label_and_transform(voc_root):
    ds = VOCMultiLabel(
        voc_root, transform=lambda im: torch.tensor(np.asarray(im), dtype=torch.float32)
    )
    for i, (image_id, (_, colour)) in enumerate(IMAGES.items()):
        image, label = ds[i]
        assert image.shape == (6, 8, 3)
        np.testing.assert_allclose(image.mean(dim=(0, 1)).numpy(), colour, atol=3)  # JPEG error
        assert label.dtype == torch.float32
        assert torch.equal(label, torch.from_numpy(_expected([image_id])[0]).float())
    raw, _ = VOCMultiLabel(voc_root)[0]
    assert isinstance(raw, Image.Image)
    assert raw.mode == "RGB"


def test_labels_without_opening_images(voc_root, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("an image was opened during construction")

    monkeypatch.setattr(Image, "open", fail)
    ds = VOCMultiLabel(voc_root)
    assert ds.labels.shape == (4, 20)


def _break(voc_root, what):
    voc = voc_root / "VOCdevkit" / "VOC2012"
    if what == "xml-missing":
        (voc / "Annotations" / "2008_000002.xml").unlink()
    elif what == "xml-malformed":
        (voc / "Annotations" / "2008_000002.xml").write_text("<annotation><object>")
    elif what == "unknown-class":
        (voc / "Annotations" / "2008_000002.xml").write_text(_xml([("unicorn", 0)]))
    elif what == "no-name":
        (voc / "Annotations" / "2008_000002.xml").write_text("<annotation><object/></annotation>")
    elif what == "image-missing":
        (voc / "JPEGImages" / "2008_000002.jpg").unlink()
    elif what == "empty-split":
        (voc / "ImageSets" / "Main" / "trainval.txt").write_text("\n\n")
    elif what == "repeated":
        (voc / "ImageSets" / "Main" / "trainval.txt").write_text("2008_000002\n2008_000002\n")


@pytest.mark.parametrize(
    ("what", "error", "match"),
    [
        ("xml-missing", FileNotFoundError, r"annotation .*2008_000002\.xml not found"),
        ("xml-malformed", ValueError, r"malformed VOC annotation .*2008_000002\.xml"),
        ("unknown-class", ValueError, r"unknown class 'unicorn' in VOC annotation .*2008_000002"),
        ("no-name", ValueError, r"unknown class '' in VOC annotation .*2008_000002"),
        ("image-missing", FileNotFoundError, r"1 image\(s\) listed by .*2008_000002\.jpg"),
        ("empty-split", ValueError, r"image list .*trainval\.txt \(`image_set`\) is empty"),
        ("repeated", ValueError, r"lists id '2008_000002' more than once"),
    ],
)
def test_corrupt_tree_raises_naming_file(voc_root, what, error, match):
    _break(voc_root, what)
    with pytest.raises(error, match=match):
        VOCMultiLabel(voc_root)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"year": "2007"}, FileNotFoundError, r"VOC2007 not found under"),
        ({"image_set": "test"}, FileNotFoundError, r"split file .*test\.txt not found"),
        ({"image_list": []}, ValueError, r"`image_list` is empty"),
        ({"image_list": ["2008_000001", "1999_000000"]}, FileNotFoundError, r"1999_000000\.jpg"),
        ({"image_list": "absent.txt"}, FileNotFoundError, r"image list absent\.txt not found"),
    ],
)
def test_bad_arguments_raise(voc_root, kwargs, error, match):
    with pytest.raises(error, match=match):
        VOCMultiLabel(voc_root, **kwargs)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VOC2012 not found under .*nowhere"):
        VOCMultiLabel(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x80\x04\x95\x00", "not UTF-8"),
        (pickle.dumps(["2008_000023"], protocol=0), "is a pickle"),
        (pickle.dumps(["2008_000023"], protocol=4), "is a pickle"),
        (b"\x00" * 16, "control characters"),
        (b"2008_000023 1\n", "spaces or control characters"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"  \n\n", "is empty"),
    ],
)
def test_read_image_list_rejects_bad_files(tmp_path, content, match):
    f = tmp_path / "img_id.pkl"
    f.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_image_list(f)


def test_read_image_list_plain_text_pkl(tmp_path):
    # the official COCO-LT img_id.pkl is plain text, one COCO id per line
    f = tmp_path / "img_id.pkl"
    f.write_text("554625\n118113\r\n 281534 \n")
    assert read_image_list(f) == ["554625", "118113", "281534"]


def test_read_image_list_skips_byte_order_mark(tmp_path):
    f = tmp_path / "img_id.txt"
    f.write_bytes("\ufeff2008_000023\n2008_000028\n".encode())
    assert read_image_list(f) == ["2008_000023", "2008_000028"]


def test_read_image_list_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`path`: image list .* is a directory"):
        read_image_list(tmp_path)
    with pytest.raises(TypeError, match=r"`path` must be a path \(str or os.PathLike of str\)"):
        read_image_list(b"img_id.txt")  # type: ignore[arg-type]
