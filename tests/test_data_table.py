from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ltml.data import LabelTable, TableMultiLabel, read_label_table


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _images(root: Path, *names: str) -> None:
    for k, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 4), (10 * k, 0, 0)).save(root / name)


def test_tags_form(tmp_path: Path) -> None:
    f = _write(tmp_path / "labels.csv", "file,tags\na.png, dog | cat\nb.png,dog\n\nc.png,\n")
    table = read_label_table(f)
    assert isinstance(table, LabelTable)
    assert table.images == ["a.png", "b.png", "c.png"]  # the blank line is skipped
    assert table.classes == ("cat", "dog")  # sorted
    assert table.labels.dtype == torch.int64
    assert table.labels.tolist() == [[1, 1], [0, 1], [0, 0]]


def test_tags_form_with_given_classes_and_separator(tmp_path: Path) -> None:
    f = _write(tmp_path / "labels.csv", "tags,image\ncat;bird,x/a.png\n")
    table = read_label_table(
        f, image_column="image", tag_separator=";", classes=["dog", "bird", "cat"]
    )
    assert table.classes == ("dog", "bird", "cat")
    assert table.labels.tolist() == [[0, 1, 1]]


def test_columns_form_tsv_with_unknowns(tmp_path: Path) -> None:
    text = "path\tcat\tdog\tbird\nx/a.jpg\t1\t-1\t0\nx/b.jpg\t0\t\t 1 \n"
    table = read_label_table(_write(tmp_path / "labels.tsv", text))
    assert table.classes == ("cat", "dog", "bird")
    assert table.labels.tolist() == [[1, -1, 0], [0, -1, 1]]


def test_columns_form_selects_and_orders_classes(tmp_path: Path) -> None:
    text = "image,split,cat,dog\na.jpg,train,1,0\nb.jpg,test,0,1\n"
    table = read_label_table(_write(tmp_path / "l.csv", text), classes=["dog", "cat"])
    assert table.labels.tolist() == [[0, 1], [1, 0]]  # the metadata column is ignored


def test_delimiter_from_the_header_and_a_bom(tmp_path: Path) -> None:
    f = _write(tmp_path / "labels.txt", "\ufeffimage\ta\tb\np.png\t1\t0\n".encode())
    assert read_label_table(f).classes == ("a", "b")
    assert read_label_table(f, delimiter="\t").labels.tolist() == [[1, 0]]


def test_quoted_fields(tmp_path: Path) -> None:
    f = _write(tmp_path / "labels.csv", 'image,tags\n"my, photo.png","a|b"\n')
    table = read_label_table(f)
    assert table.images == ["my, photo.png"]
    assert table.labels.tolist() == [[1, 1]]


def test_paths_are_normalised(tmp_path: Path) -> None:
    table = read_label_table(
        _write(tmp_path / "l.csv", "image,tags\n./x//a.png,a\nx/y/../b.png,a\n")
    )
    assert table.images == ["x/a.png", "x/b.png"]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, r"label table .*l\.csv is empty: expected a header row"),
        ("\n  \n", {}, r"is empty"),
        ("image,tags\n", {}, r"l\.csv has a header but no row"),
        ("image,tags\na.png,cat\nb.png,cow\n", {"classes": ["cat"]},
         r"l\.csv, line 3: unknown tag 'cow'; the classes are cat"),
        ("image,cat\na.png,1\nb.png,2\n", {},
         r"l\.csv, line 3: '2' in column 'cat' is not a label: "
         r"expected 1 \(positive\), 0 \(negative\), -1 or empty \(unknown\)"),
        ("image,cat\na.png,yes\n", {}, r"line 2: 'yes' in column 'cat' is not a label"),
        ("image,cat\na.png,1\nb.png,0\na.png,1\n", {},
         r"l\.csv, line 4: image 'a.png' is listed twice \(first at .*l\.csv, line 2\)"),
        ("image,cat\nx/../a.png,1\n./a.png,0\n", {}, r"line 3: image './a.png' is listed twice"),
        ("image,cat\n../secret.png,1\n", {},
         r"line 2: image path '\.\./secret\.png' leaves the image root"),
        ("image,cat\nx/../../s.png,1\n", {}, r"line 2: image path .* leaves the image root"),
        ("image,cat\n/etc/s.png,1\n", {}, r"line 2: image path '/etc/s\.png' leaves the"),
        ("image,cat\n ,1\n", {}, r"line 2: empty image path in column 'image'"),
        ("image,cat\na.png,1,0\n", {}, r"line 2: 3 field\(s\), but the header has 2"),
        ("image,cat,cat\na.png,1,0\n", {}, r"has column 'cat' twice in its header"),
        ("image\na.png\n", {}, r"has no class column"),
        ("image,tags\na.png,\n", {}, r"no tag in column 'tags'"),
        ("image,cat\na.png,1\n", {"tags_column": "labels"},
         r"`tags_column`: no column 'labels' in .*l\.csv; its header is \['image', 'cat'\]"),
        ("image,cat\na.png,1\n", {"image_column": "path"}, r"`image_column`: no column 'path'"),
        ("image,cat\na.png,1\n", {"classes": ["dog"]}, r"`classes`: no column 'dog'"),
        ("image,cat\na.png,1\n", {"classes": ["cat", "cat"]}, r"`classes` must be distinct"),
        ("image,cat\na.png,1\n", {"classes": []}, r"`classes` must name at least one class"),
    ],
)  # fmt: skip
def test_bad_tables_name_the_file_and_line(
    tmp_path: Path, text: str, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        read_label_table(_write(tmp_path / "l.csv", text), **kwargs)


def test_encoding_error_names_the_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "l.csv", b"image,tags\na.png,cat\nb\xe9.png,cat\n")
    with pytest.raises(
        ValueError, match=r"l\.csv, line 3: not UTF-8 text .*save the table as UTF-8"
    ):
        read_label_table(f)


def test_malformed_quoting_names_the_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "l.csv", 'image,tags\na.png,cat\n"b.png"x,cat\n')
    with pytest.raises(ValueError, match=r"l\.csv, line 3: malformed"):
        read_label_table(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"label table .*nope\.csv not found"):
        read_label_table(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match=r"`classes` must be a sequence of class names"):
        read_label_table(_write(tmp_path / "l.csv", "image,cat\na.png,1\n"), classes="cat")


def test_dataset_reads_labels_without_images_then_loads_them(tmp_path: Path) -> None:
    _images(tmp_path, "photos/a.png", "photos/sub/b.png", "c.png")
    text = "image,cat,dog\nphotos/a.png,1,0\nphotos/sub/b.png,-1,1\nc.png,0,\n"
    seen = []
    ds = TableMultiLabel(
        _write(tmp_path / "labels.csv", text), tmp_path, transform=lambda im: seen.append(1) or im
    )
    assert seen == []  # construction opened no image
    assert len(ds) == 3
    assert ds.labels.tolist() == [[1, 0], [-1, 1], [0, -1]]
    image, target = ds[1]
    assert image.size == (6, 4)
    assert image.mode == "RGB"
    assert target.dtype == torch.float32
    assert target.tolist() == [-1.0, 1.0]  # unknown stays -1 for the losses to ignore
    assert seen == [1]


def test_dataset_names_the_lines_of_missing_images(tmp_path: Path) -> None:
    _images(tmp_path, "a.png")
    text = "image,tags\na.png,cat\nmissing.png,cat\nno/dir.png,dog\n"
    expected = (
        r"2 image\(s\) not found under .*\n  .*labels\.csv, line 3: .*missing\.png\n"
        r"  .*labels\.csv, line 4: .*no/dir\.png"
    )
    with pytest.raises(FileNotFoundError, match=expected):
        TableMultiLabel(_write(tmp_path / "labels.csv", text), tmp_path)
    with pytest.raises(FileNotFoundError, match=r"image root .*nowhere not found"):
        TableMultiLabel(tmp_path / "labels.csv", tmp_path / "nowhere")


def test_dataset_with_training_classes_for_a_test_table(tmp_path: Path) -> None:
    _images(tmp_path, "a.png", "b.png")
    train = TableMultiLabel(_write(tmp_path / "train.csv", "image,tags\na.png,b|a\n"), tmp_path)
    test = TableMultiLabel(
        _write(tmp_path / "test.csv", "image,tags\nb.png,b\n"), tmp_path, classes=train.classes
    )
    assert test.classes == ("a", "b")
    assert test.labels.tolist() == [[0, 1]]


def test_dataframe_is_read_as_the_same_table(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    text = "image,cat,dog\na.png,1,\nb.png,0,-1\nc.png,1,1\n"
    from_file = read_label_table(_write(tmp_path / "l.csv", text))
    frame = pd.read_csv(tmp_path / "l.csv")  # the empty cell becomes NaN, the column float
    from_frame = read_label_table(frame)
    assert from_frame.images == from_file.images
    assert from_frame.classes == from_file.classes
    assert torch.equal(from_frame.labels, from_file.labels)
    tags = pd.DataFrame({"image": ["a.png", "b.png"], "tags": ["x|y", None]})
    assert read_label_table(tags).labels.tolist() == [[1, 1], [0, 0]]
    booleans = pd.DataFrame({"image": ["a.png"], "x": [True], "y": [False]})
    assert read_label_table(booleans).labels.tolist() == [[1, 0]]
    bad = pd.DataFrame({"image": ["a.png", "b.png"], "x": [1, 5]})
    with pytest.raises(ValueError, match=r"the DataFrame, row 1: '5' in column 'x' is not a label"):
        read_label_table(bad)
    with pytest.raises(ValueError, match=r"the DataFrame has a header but no row"):
        read_label_table(pd.DataFrame({"image": [], "x": []}))
