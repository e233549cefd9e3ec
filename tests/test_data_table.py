from __future__ import annotations

import gzip
import re
import warnings
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


# ------------------------------------------------------------- unknown, no label and metadata


def test_unknown_marker_makes_a_row_unknown(tmp_path: Path) -> None:
    f = _write(tmp_path / "l.csv", "image,tags\na.png,cat|dog\nb.png, NA \nc.png,\nd.png,dog\n")
    table = read_label_table(f, unknown="NA")
    assert table.classes == ("cat", "dog")  # NA is no class
    assert table.labels.tolist() == [[1, 1], [-1, -1], [0, 0], [0, 1]]
    # an empty cell is an image with no positive, unless it is the marker
    empty = read_label_table(f, unknown="", classes=["cat", "dog", "NA"])
    assert empty.labels.tolist() == [[1, 1, 0], [0, 0, 1], [-1, -1, -1], [0, 1, 0]]


def test_no_label_tag_is_a_row_of_negatives(tmp_path: Path) -> None:
    text = "image,tags\na.png,Mass|Nodule\nb.png,No Finding\nc.png,?\nd.png,Mass\n"
    table = read_label_table(_write(tmp_path / "l.csv", text), no_label="No Finding", unknown="?")
    assert table.classes == ("Mass", "Nodule")
    assert table.labels.tolist() == [[1, 1], [0, 0], [-1, -1], [1, 0]]
    given = read_label_table(
        tmp_path / "l.csv", no_label="No Finding", unknown="?", classes=["Nodule", "Mass"]
    )
    assert given.labels.tolist() == [[1, 1], [0, 0], [-1, -1], [0, 1]]


def test_the_dataframe_and_the_dataset_take_the_markers(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"image": ["a.png", "b.png", "c.png"], "tags": ["x", None, "none"]})
    table = read_label_table(frame, unknown="", no_label="none")
    assert table.labels.tolist() == [[1], [-1], [0]]
    _images(tmp_path, "a.png", "b.png")
    ds = TableMultiLabel(
        _write(tmp_path / "l.csv", "image,tags\na.png,x\nb.png,NA\n"), tmp_path, unknown="NA"
    )
    assert ds[1][1].tolist() == [-1.0]


@pytest.mark.parametrize("marker", ["NA", "nan", "None", "?", "N/A", "null"])
def test_a_tag_like_a_missing_value_is_warned_about(tmp_path: Path, marker: str) -> None:
    f = _write(tmp_path / "l.csv", f"image,tags\na.png,cat\nb.png,{marker}\nc.png,{marker}\n")
    with pytest.warns(UserWarning, match=rf"l\.csv, line 3: the tag '{re.escape(marker)}' in "
                      rf"column 'tags' looks like a missing value, and became a class \(2 row"
                      rf"\(s\)\); pass unknown='{re.escape(marker)}'"):  # fmt: skip
        table = read_label_table(f)
    assert marker in table.classes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_label_table(f, unknown=marker)  # no warning either way
        read_label_table(f, classes=["cat", marker])


def test_a_warning_names_the_callers_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "l.csv", "image,tags\na.png,NA\n")
    with pytest.warns(UserWarning, match="looks like a missing value") as record:
        read_label_table(f)
    assert record[0].filename == __file__
    _images(tmp_path, "a.png")
    with pytest.warns(UserWarning, match="looks like a missing value") as record:
        TableMultiLabel(f, tmp_path)
    assert record[0].filename == __file__


def test_trailing_delimiter_adds_no_class(tmp_path: Path) -> None:
    both = _write(tmp_path / "a.csv", "image,cat,dog,\na.png,1,0,\nb.png,0,1,\n")
    header_only = _write(tmp_path / "b.csv", "image,cat,dog,\na.png,1,0\nb.png,0,1\n")
    tags = _write(tmp_path / "c.tsv", "image\ttags\t\na.png\tcat\t\n")
    for f in (both, header_only):
        table = read_label_table(f)
        assert table.classes == ("cat", "dog")
        assert table.labels.tolist() == [[1, 0], [0, 1]]
    assert read_label_table(tags).classes == ("cat",)


def test_gzip_tables(tmp_path: Path) -> None:
    tsv = "image\tpatient\tcat\tdog\na.png\t7\t1.0\t0.0\nb.png\t7\t-1.0\t\n"
    f = tmp_path / "labels.tsv.gz"
    f.write_bytes(gzip.compress(tsv.encode()))
    table = read_label_table(f, ignore_columns=["patient"])
    assert table.classes == ("cat", "dog")
    assert table.labels.tolist() == [[1, 0], [-1, -1]]
    plain = _write(tmp_path / "labels.tsv", tsv)
    assert torch.equal(read_label_table(plain, ignore_columns=["patient"]).labels, table.labels)
    csv = tmp_path / "tags.csv.gz"
    csv.write_bytes(gzip.compress(b"image,tags\na.png,x|y\n"))
    assert read_label_table(csv).labels.tolist() == [[1, 1]]


def test_numbers_written_as_floats(tmp_path: Path) -> None:
    text = "image,a,b,c\nx.png,1.0,0.0,-1.0\ny.png,+1,0.,\nz.png,1,-0.0,-1\n"
    table = read_label_table(_write(tmp_path / "l.csv", text))
    assert table.labels.tolist() == [[1, 0, -1], [1, 0, -1], [1, 0, -1]]


def test_label_columns_of_a_table_with_metadata(tmp_path: Path) -> None:
    text = "Path,Sex,Age,No Finding,Edema\np1.jpg,Female,68,1.0,\np2.jpg,Male,87,,-1.0\n"
    f = _write(tmp_path / "l.csv", text)
    hint = r"leave it out with `ignore_columns` or name the label columns with `classes`"
    with pytest.raises(ValueError, match=r"'Female' in column 'Sex' is not a label: .*" + hint):
        read_label_table(f)
    by_name = read_label_table(f, classes=["No Finding", "Edema"])
    ignoring = read_label_table(f, ignore_columns=["Sex", "Age"])
    assert by_name.classes == ignoring.classes == ("No Finding", "Edema")
    assert by_name.labels.tolist() == ignoring.labels.tolist() == [[1, -1], [-1, -1]]


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "message"),
    [
        ("image,tags\na.png,NA|cat\n", {"unknown": "NA"}, ValueError,
         r"l\.csv, line 2: 'NA' \(`unknown`\) beside other tags \['cat'\]; it must stand alone"),
        ("image,tags\na.png,none|cat\n", {"no_label": "none"}, ValueError,
         r"line 2: 'none' \(`no_label`\) beside other tags \['cat'\]"),
        ("image,cat\na.png,1\n", {"unknown": "NA"}, ValueError,
         r"`unknown` applies to the tags form, but .*l\.csv is read in the columns form"),
        ("image,cat\na.png,1\n", {"no_label": "none"}, ValueError,
         r"`no_label` applies to the tags form"),
        ("image,tags\na.png,x\n", {"unknown": 3}, TypeError,
         r"`unknown` must be a string \(a tag\) or None, got 3"),
        ("image,tags\na.png,x\n", {"no_label": ""}, ValueError,
         r"`no_label` must be a tag, got an empty string"),
        ("image,tags\na.png,x\n", {"no_label": "x", "unknown": "x"}, ValueError,
         r"`unknown` and `no_label` must differ, got 'x' for both"),
        ("image,tags\na.png,x\n", {"no_label": "x", "classes": ["x"]}, ValueError,
         r"`no_label`: 'x' is also among `classes`"),
        ("image,tags\na.png,x\n", {"ignore_columns": ["tags"]}, ValueError,
         r"`ignore_columns` applies to the columns form"),
        ("image,a,b\na.png,1,0\n", {"ignore_columns": "a"}, TypeError,
         r"`ignore_columns` must be a sequence of column names, got str"),
        ("image,a,b\na.png,1,0\n", {"ignore_columns": ["c"]}, ValueError,
         r"`ignore_columns`: no column 'c' in .*l\.csv; its header is \['image', 'a', 'b'\]"),
        ("image,tags\nb.png,x\na.png,NA\n", {"unknown": "NA", "sparse": True}, ValueError,
         r"`unknown`: 1 row\(s\) marked 'NA' \(first: .*l\.csv, line 3\), but the sparse tags "
         r"form stores ones only"),
        ("image,a,,b\nx.png,1,0,1\n", {}, ValueError,
         r"l\.csv: column 3 of the header has no name, so it cannot be a class"),
        ("image,a,\nx.png,1,0\n", {}, ValueError,
         r"l\.csv, line 2: '0' under the header's last column, which has no name"),
        ("image,a\nx.png,nan\n", {}, ValueError, r"'nan' in column 'a' is not a label"),
        ("image,a\nx.png,2.0\n", {}, ValueError, r"'2\.0' in column 'a' is not a label"),
    ],
)  # fmt: skip
def test_bad_markers_and_columns(
    tmp_path: Path, text: str, kwargs: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        read_label_table(_write(tmp_path / "l.csv", text), **kwargs)


def test_a_broken_gzip_file(tmp_path: Path) -> None:
    f = tmp_path / "l.csv.gz"
    f.write_bytes(gzip.compress(b"image,tags\na.png,x\n")[:-6])
    with pytest.raises(
        ValueError, match=r"label table .*l\.csv\.gz: a gzip file that cannot be read"
    ):
        read_label_table(f)


def test_the_nih_table_reads_as_the_fixture(nih_cxr14: object) -> None:
    from conftest import SHARED_DATA

    table = read_label_table(
        SHARED_DATA / "nih_cxr14" / "labels.tsv.gz", ignore_columns=["patient"]
    )
    assert len(table.classes) == 14
    assert table.classes[0] == "Atelectasis"
    assert torch.equal(table.labels, torch.as_tensor(nih_cxr14))
