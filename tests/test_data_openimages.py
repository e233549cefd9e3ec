"""OpenImages image-level labels: each rule of the reader, its errors, and the dataset."""

from __future__ import annotations

import pickle
import warnings
from collections import defaultdict

import numpy as np
import pytest
import torch
from PIL import Image

import ltml.data._fastcsv as fastcsv
from ltml import VerifiedLabels
from ltml.data import OpenImagesMultiLabel, read_openimages_labels

HEADER = "ImageID,Source,LabelName,Confidence"
CLASSES = ["/m/cat", "/m/dog", "/m/0k4j"]


def _write(path, rows, header=HEADER, end="\n", final=True):
    text = end.join([header, *(",".join(map(str, r)) for r in rows)]) + (end if final else "")
    path.write_text(text, newline="")
    return path


def _read(tmp_path, rows, classes=CLASSES, **kwargs):
    return read_openimages_labels(_write(tmp_path / "labels.csv", rows), classes, **kwargs)


def _dense(oi):
    return oi.labels.to_dense().tolist()


# ----------------------------------------------------------------------------------- the rules


def test_rows_are_the_images_with_a_listed_class_sorted_by_image_id(tmp_path):
    oi = _read(
        tmp_path,
        [
            ("ffff", "verification", "/m/cat", 1),
            ("0a", "verification", "/m/dog", 0),
            ("b1", "verification", "/m/car", 1),  # only an unlisted class: no row
            ("0a", "verification", "/m/0k4j", 1),
        ],
    )
    assert oi.image_ids.tolist() == ["0a", "ffff"]
    assert oi.image_ids.dtype.kind == "U"
    assert _dense(oi) == [[-1, 0, 1], [1, -1, -1]]
    assert oi.classes == oi.label_names == tuple(CLASSES)
    assert isinstance(oi.labels, VerifiedLabels)


def test_unlisted_classes_are_dropped_and_counted(tmp_path):
    oi = _read(
        tmp_path,
        [("a", "v", "/m/cat", 1), ("a", "v", "/m/car", 0), ("b", "v", "/m/bus", 1)],
    )
    assert oi.dropped_labels == 2
    assert _dense(oi) == [[1, -1, -1]]


def test_the_same_verdict_twice_is_one_label(tmp_path):
    rows = [
        ("a", "verification", "/m/cat", 1),
        ("a", "crowdsource-verification", "/m/cat", 1),
        ("a", "verification", "/m/dog", 0),
        ("a", "verification", "/m/dog", 0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no conflict: no warning
        oi = _read(tmp_path, rows)
    assert oi.labels.nnz == 2
    assert _dense(oi) == [[1, 0, -1]]


def test_present_and_absent_become_unknown_with_one_warning(tmp_path):
    rows = [
        ("a", "verification", "/m/cat", 1),
        ("a", "crowdsource-verification", "/m/cat", 0),
        ("a", "verification", "/m/dog", 1),
        ("b", "verification", "/m/dog", 0),
        ("b", "verification", "/m/dog", 1),
        ("b", "verification", "/m/dog", 1),
    ]
    with pytest.warns(UserWarning, match=r"2 \(image, class\) pair\(s\) of .*labels.csv") as rec:
        oi = _read(tmp_path, rows)
    assert len(rec) == 1
    assert rec[0].filename == __file__  # points at the caller
    assert _dense(oi) == [[-1, 1, -1], [-1, -1, -1]]  # b keeps its (unknown) row


def test_machine_labels_threshold_and_human_verdicts_win(tmp_path):
    human = [
        ("a", "verification", "/m/cat", 0),
        ("a", "verification", "/m/dog", 1),
        ("c", "verification", "/m/cat", 1),
        ("c", "verification", "/m/cat", 0),  # conflict: stays unknown
    ]
    machine = [
        ("a", "machine", "/m/cat", "0.99"),  # humans said absent
        ("a", "machine", "/m/0k4j", "0.5"),  # at the threshold: kept
        ("b", "machine", "/m/dog", "0.7"),  # an image of machine labels only
        ("b", "machine", "/m/cat", "0.49"),  # below: left out
        ("c", "machine", "/m/cat", "1"),  # humans conflict: ignored
        ("d", "machine", "/m/dog", "0.1"),  # below: no row for d
        ("e", "machine", "/m/car", "0.9"),  # unlisted: dropped, counted
    ]
    path = _write(tmp_path / "machine.csv", machine)
    with pytest.warns(UserWarning, match="1 "):
        oi = _read(tmp_path, human, machine_labels_csv=path, machine_threshold=0.5)
    assert oi.image_ids.tolist() == ["a", "b", "c"]
    assert _dense(oi) == [[0, 1, 1], [-1, 1, -1], [-1, -1, -1]]
    assert oi.dropped_labels == 1
    with pytest.warns(UserWarning, match="verified both present and absent"):
        strict = _read(tmp_path, human, machine_labels_csv=path, machine_threshold=0.8)
    assert _dense(strict) == [[0, 1, -1], [-1, -1, -1]]


def _slow_reference(human, machine, classes, threshold):
    """Transcription of the documented rules, one row at a time."""
    column = {c: k for k, c in enumerate(classes)}
    verdicts, machine_positive, dropped = defaultdict(set), set(), 0
    for image, _, name, confidence in human:
        if name not in column:
            dropped += 1
        else:
            verdicts[image, column[name]].add(int(confidence))
    for image, _, name, confidence in machine:
        if name not in column:
            dropped += 1
        elif float(confidence) >= threshold:
            machine_positive.add((image, column[name]))
    images = sorted({i for i, _ in verdicts} | {i for i, _ in machine_positive})
    dense = {i: [-1] * len(classes) for i in images}
    for (image, k), values in verdicts.items():
        if len(values) == 1:
            dense[image][k] = values.pop()
    for image, k in machine_positive - set(verdicts):
        dense[image][k] = 1
    return images, [dense[i] for i in images], dropped


@pytest.mark.parametrize("block", [16, 100, 4096, fastcsv.BLOCK])
@pytest.mark.parametrize("seed", range(3))
def test_random_files_match_the_slow_reference_across_block_boundaries(
    tmp_path, monkeypatch, block, seed
):
    rng = np.random.default_rng(seed)
    ids = [f"{v:x}" for v in rng.integers(0, 16**5, 60)]  # ids of 1 to 5 hex digits
    names = [*CLASSES, "/m/x", "/g/11bc6c2n0t"]  # two unlisted, of other lengths

    def rows(n, scores):
        picks = zip(rng.integers(0, 60, n), rng.integers(0, 5, n), strict=True)
        return [
            (ids[i], "verification", names[k], f"{rng.random():.3f}" if scores else rng.integers(2))
            for i, k in picks
        ]

    human, machine = rows(300, False), rows(200, True)
    monkeypatch.setattr(fastcsv, "BLOCK", block)
    path = _write(tmp_path / "machine.csv", machine, end="\r\n", final=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        oi = _read(tmp_path, human, machine_labels_csv=path, machine_threshold=0.6)
    images, dense, dropped = _slow_reference(human, machine, CLASSES, 0.6)
    assert oi.image_ids.tolist() == images
    assert _dense(oi) == dense
    assert oi.dropped_labels == dropped


def test_file_forms_crlf_blank_lines_bom_column_order_extra_columns(tmp_path):
    rows = [("b", "v", "/m/dog", 1), ("a", "v", "/m/cat", 0)]
    expected = _dense(_read(tmp_path, rows))
    odd = tmp_path / "odd.csv"
    odd.write_bytes(
        b"\xef\xbb\xbfLabelName,Confidence,Extra,ImageID\r\n"
        b"/m/dog,1,x,b\r\n\r\n"
        b"/m/cat,0,y,a"  # no line end at the end of the file
    )
    assert _dense(read_openimages_labels(odd, CLASSES)) == expected


def test_classes_from_the_trainable_file_and_descriptions(tmp_path):
    trainable = tmp_path / "classes.txt"
    trainable.write_text("\ufeff/m/cat\n\n/m/dog\n/m/0k4j\n")
    rows = [("a", "v", "/m/dog", 1)]
    from_file = _read(tmp_path, rows, classes=trainable)
    assert from_file.label_names == tuple(CLASSES)
    assert _dense(from_file) == [[-1, 1, -1]]
    for header in ("LabelName,DisplayName\n", ""):  # V6 / V7 have the header, older ones not
        descriptions = tmp_path / "descriptions.csv"
        descriptions.write_text(
            header + '/m/0k4j,"Ball, round"\n/m/dog,Dog\n/m/cat,Cat\n/m/car,Car\n'
        )
        oi = _read(tmp_path, rows, classes=trainable, class_descriptions=descriptions)
        assert oi.classes == ("Cat", "Dog", "Ball, round")
        assert oi.label_names == tuple(CLASSES)


# ---------------------------------------------------------------------------------- the errors


def _error(tmp_path, content, match, error=ValueError, **kwargs):
    path = tmp_path / "labels.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, newline="")
    with pytest.raises(error, match=match):
        read_openimages_labels(path, CLASSES, **kwargs)


GOOD = "a,v,/m/cat,1\n"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", r"`labels_csv`: .*labels.csv is empty: expected the header 'ImageID,Source,"),
        ("\n\n", "is empty"),
        (
            "ImageID,Source,LabelName\na,v,/m/cat\n",
            r"labels.csv, line 1: no column 'Confidence' in the header 'ImageID,Source,LabelName'",
        ),
        ("id,source,label,conf\n" + GOOD, r"line 1: no column 'ImageID'"),
        (HEADER + ",ImageID\n", "line 1: column 'ImageID' is in the header twice"),
        (b"\xff\xfeImageID\n", "line 1: the header is not UTF-8 text"),
        (HEADER + "\n" + GOOD + "b,v,/m/cat\n", r"line 3: 3 field\(s\), but the header has 4"),
        (HEADER + "\n" + GOOD + "b,v,/m/cat,1,1\n", r"line 3: 5 field\(s\), but the header has 4"),
        (HEADER + "\n" + GOOD + "\nb\n", r"line 4: 1 field\(s\)"),
        (HEADER + '\n"a",v,/m/cat,1\n', "line 2: a quoted field"),
        (HEADER + "\n" + GOOD + "a,v,/m/cat,0.5\n", r"line 3: Confidence '0.5' is not a human"),
        (HEADER + "\n" + GOOD + "a,v,/m/cat,\n", r"line 3: Confidence '' is not a human verdict"),
        (HEADER + "\n" + GOOD + "a,v,/m/cat,2\n", r"Confidence '2' is not a human verdict: exp"),
        (HEADER + "\n,v,/m/cat,1\n", r"line 2: ImageID '' cannot name an image file"),
        (HEADER + "\n../a,v,/m/cat,1\n", r"line 2: ImageID '../a' cannot name an image file"),
        (HEADER + "\na b,v,/m/cat,1\n", r"line 2: ImageID 'a b' cannot name"),
        (HEADER + "\n..,v,/m/cat,1\n", r"line 2: ImageID '..' cannot name"),
        (HEADER + "\nabc\\d,v,/m/cat,1\n", r"ImageID 'abc\\\\d' cannot name"),
        (HEADER.encode() + b"\n\xc3\xa9,v,/m/cat,1\n", "line 2: ImageID 'é' cannot name"),
        (HEADER + "\n" + GOOD + "b,v,,1\n", r"line 3: empty LabelName"),
        (HEADER + "\na,v,/m/car,1\n", r"no label of a class of `classes` \(1 label\(s\) of other"),
        (HEADER + "\n", r"no label of a class of `classes` \(0 label\(s\)"),
        (HEADER, r"no label of a class of `classes`"),
    ],
)
def test_bad_label_files_name_the_file_and_line(tmp_path, content, match):
    _error(tmp_path, content, match)


def test_errors_are_found_in_later_blocks_with_their_line(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcsv, "BLOCK", 32)
    _error(tmp_path, HEADER + "\n" + GOOD * 20 + "b,v,/m/cat,7\n", "line 22: Confidence '7'")
    _error(tmp_path, HEADER + "\n" + GOOD * 20 + "b,v,/m/cat\n", r"line 22: 3 field\(s\)")
    _error(tmp_path, HEADER + "\n" + GOOD * 20 + '"b",v,/m/cat,1\n', "line 22: a quoted")


@pytest.mark.parametrize(
    ("score", "match"),
    [
        ("abc", "'abc' is not a score in"),
        ("1.5", r"'1.5' is not a score in \[0, 1\]"),
        ("nan", "'nan' is not a score"),
        ("-0.1", "'-0.1'"),
        ("", "'' is not a score"),
    ],
)
def test_bad_machine_scores(tmp_path, score, match):
    machine = _write(
        tmp_path / "machine.csv", [("a", "m", "/m/cat", "0.5"), ("a", "m", "/m/dog", score)]
    )
    with pytest.raises(
        ValueError, match=rf"`machine_labels_csv`: .*machine.csv, line 3: .*{match}"
    ):
        _read(tmp_path, [("a", "v", "/m/cat", 1)], machine_labels_csv=machine)


def test_bad_classes_and_descriptions(tmp_path):
    rows = [("a", "v", "/m/cat", 1)]
    with pytest.raises(ValueError, match="`classes` must be distinct, got '/m/cat' twice"):
        _read(tmp_path, rows, classes=["/m/cat", "/m/cat"])
    with pytest.raises(TypeError, match="`classes` must be a sequence of class names"):
        _read(tmp_path, rows, classes=3)
    not_a_list = tmp_path / "classes.csv"
    not_a_list.write_text("/m/cat\n/m/dog,Dog\n")
    with pytest.raises(
        ValueError, match=r"`classes`: .*classes.csv, line 2: '/m/dog,Dog' is not a"
    ):
        _read(tmp_path, rows, classes=not_a_list)
    descriptions = tmp_path / "descriptions.csv"
    descriptions.write_text("/m/cat,Cat\n/m/dog,Dog\n")
    with pytest.raises(ValueError, match=r"has no DisplayName for 1 class\(es\) .*'/m/0k4j'"):
        _read(tmp_path, rows, class_descriptions=descriptions)
    descriptions.write_text("/m/cat,Cat\n/m/cat,Kitten\n")
    with pytest.raises(ValueError, match="line 2: LabelName '/m/cat' has two DisplayNames"):
        _read(tmp_path, rows, class_descriptions=descriptions)
    descriptions.write_text("/m/cat,Cat,x\n")
    with pytest.raises(ValueError, match=r"`class_descriptions`: .*line 1: 3 field\(s\)"):
        _read(tmp_path, rows, class_descriptions=descriptions)
    with pytest.raises(FileNotFoundError, match="`class_descriptions`: class-descriptions file"):
        _read(tmp_path, rows, class_descriptions=tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError, match=r"`labels_csv`: label file .* not found"):
        read_openimages_labels(tmp_path / "missing.csv", CLASSES)
    header_only = _write(tmp_path / "machine.csv", [])
    assert _dense(_read(tmp_path, rows, machine_labels_csv=header_only)) == [[1, -1, -1]]
    with pytest.raises(ValueError, match=r"`machine_threshold` must be a finite real number in"):
        _read(tmp_path, rows, machine_threshold=1.5)


# --------------------------------------------------------------------------------- the dataset


def _images(folder, *ids):
    for i, image_id in enumerate(ids):
        Image.new("RGB", (4 + i, 4)).save(folder / f"{image_id}.jpg")


def test_dataset_items_loader_and_transform(tmp_path):
    _images(tmp_path, "0a", "1b")
    labels = _write(tmp_path / "labels.csv", [("1b", "v", "/m/dog", 0), ("0a", "v", "/m/cat", 1)])
    ds = OpenImagesMultiLabel(tmp_path, labels, CLASSES, transform=lambda im: im.size)
    assert len(ds) == 2
    assert ds.image_ids.tolist() == ["0a", "1b"]
    size, target = ds[1]
    assert size == (5, 4)
    assert target.dtype == torch.float32
    assert target.tolist() == [-1.0, 0.0, -1.0]
    assert ds.dropped_labels == 0
    assert ds.images_dir == tmp_path
    paths = OpenImagesMultiLabel(tmp_path, labels, CLASSES, loader=lambda p: p.name)
    assert paths[0][0] == "0a.jpg"
    again = pickle.loads(pickle.dumps(paths.labels))  # DataLoader workers get a copy
    assert torch.equal(again.to_dense(), paths.labels.to_dense())


def test_dataset_errors(tmp_path):
    _images(tmp_path, "0a")
    labels = _write(tmp_path / "labels.csv", [("0a", "v", "/m/cat", 1), ("9z", "v", "/m/cat", 1)])
    with pytest.raises(FileNotFoundError, match=r"`images_dir`: 1 image\(s\) .*9z.jpg"):
        OpenImagesMultiLabel(tmp_path, labels, CLASSES)
    with pytest.raises(FileNotFoundError, match=r"`images_dir`: image folder .* not found"):
        OpenImagesMultiLabel(tmp_path / "nowhere", labels, CLASSES)
    with pytest.raises(TypeError, match="`loader` must be a callable or None"):
        OpenImagesMultiLabel(tmp_path, labels, CLASSES, loader="PIL")
    with pytest.raises(TypeError, match="`transform` must be a callable or None"):
        OpenImagesMultiLabel(tmp_path, labels, CLASSES, transform=3)
