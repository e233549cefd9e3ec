from __future__ import annotations

import gzip
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ltml.data import describe_labels
from ltml.data.describe import main

# A known matrix: 8 images, 4 classes.
#   a: images 0-5 (6)   b: 0, 1, 2 (3)   c: 0, 1 (2), unknown on 7   d: none, unknown on 6
LABELS = torch.tensor(
    [
        [1, 1, 1, 0],
        [1, 1, 1, 0],
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, -1],
        [0, 0, -1, 0],
    ]
)
NAMES = ["a", "b", "c", "d"]


def test_numbers_of_a_known_matrix() -> None:
    r = describe_labels(LABELS, NAMES, thresholds=(3, 6), few=3, top_pairs=2)
    assert (r.num_images, r.num_classes, r.classes) == (8, 4, ("a", "b", "c", "d"))
    assert r.counts == [6, 3, 2, 0]
    assert r.mean_labels_per_image == pytest.approx(11 / 8)
    assert r.max_labels_per_image == 3
    assert r.images_without_label == 2
    assert r.unknown_share == pytest.approx(2 / 32)
    assert r.groups == {"head": [0], "medium": [1], "tail": [2, 3]}
    assert r.imbalance_ratio == pytest.approx(6 / 2)  # the empty class is left out
    assert r.empty_classes == [3]
    assert r.few_classes == [2]  # 1 or 2 positives
    # pairs: a+b 3 images, a+c 2, b+c 2 (the tie keeps index order)
    assert r.top_pairs == [(0, 1, 3), (0, 2, 2)]
    assert r.tail_companions == [(2, 0, 2)]  # d has no companion


def test_pairs_against_the_product_of_the_label_matrix() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 12)) < np.linspace(0.6, 0.02, 12)).astype(np.int64)
    labels[rng.random(labels.shape) < 0.1] = -1
    positive = (labels == 1).astype(np.int64)
    both = positive.T @ positive
    np.fill_diagonal(both, 0)
    r = describe_labels(labels, top_pairs=66)
    assert len(r.top_pairs) == np.count_nonzero(np.triu(both, 1))
    for a, b, n in r.top_pairs:
        assert n == both[a, b]
        assert r.counts[a] >= r.counts[b]
    assert [n for _, _, n in r.top_pairs] == sorted(np.triu(both, 1)[np.triu(both, 1) > 0])[::-1]
    for k, companion, n in r.tail_companions:
        assert n == both[k].max() == both[k, companion]
    assert r.counts == positive.sum(0).tolist()


def test_text_report_reads_in_a_terminal() -> None:
    text = describe_labels(LABELS, NAMES, thresholds=(3, 6), few=3).format(title="toy")
    lines = text.splitlines()
    assert lines[0] == "toy: 8 images, 4 classes"
    assert set(lines[1]) == {"="}
    assert "imbalance ratio 3.0" in text
    assert "head 1 (>= 6), medium 1 (3-5), tail 2 (< 3)" in text
    assert "no positive         1: d" in text
    assert "a + b" in text
    assert max(len(line) for line in lines) <= 100


def test_long_class_tables_are_cut_in_the_middle() -> None:
    labels = torch.zeros(200, 100, dtype=torch.int64)
    for k in range(100):
        labels[: 100 - k, k] = 1
    text = describe_labels(labels).format(max_classes=10)
    assert "(90 more)" in text
    assert "      1  0 " in text
    assert "    100  99 " in text


@pytest.mark.filterwarnings("ignore:all .* classes are:UserWarning")
def test_empty_matrix_and_bad_arguments() -> None:
    r = describe_labels(torch.zeros(3, 2, dtype=torch.int64))
    assert math.isnan(r.imbalance_ratio)
    assert r.top_pairs == []
    assert "no positive         2: 0, 1" in str(r)
    with pytest.raises(ValueError, match=r"`classes` must name the 2 columns of `labels`, got 3"):
        describe_labels(torch.zeros(3, 2), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"`labels` must contain only values in"):
        describe_labels(torch.tensor([[2, 0]]))
    with pytest.raises(ValueError, match=r"`labels` must be 2-D"):
        describe_labels(torch.zeros(3))


@pytest.mark.filterwarnings("ignore:all .* classes are:UserWarning")
def test_class_profile_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    describe_labels(LABELS, NAMES).plot(tmp_path / "profile.png")
    assert (tmp_path / "profile.png").stat().st_size > 1000


def _table(tmp_path: Path) -> Path:
    rows = ["image,tags"] + [f"{i}.png,{'|'.join(t)}" for i, t in enumerate(
        [["a", "b"], ["a", "b"], ["a"], ["a"], ["a"], ["c"], []]
    )]  # fmt: skip
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_command_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    table = _table(tmp_path)
    code = main([str(table), "--thresholds", "2", "4", "--figure", str(tmp_path / "p.png")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"{table}: 7 images, 3 classes")
    assert "head 1 (>= 4), medium 1 (2-3), tail 1 (< 2)" in out
    assert "a + b" in out
    assert (tmp_path / "p.png").is_file()


def test_command_reports_a_bad_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("image,x\na.png,7\n")
    assert main([str(bad)]) == 1
    assert "error: " in (err := capsys.readouterr().err)
    assert "bad.csv, line 2: '7' in column 'x' is not a label" in err


def test_python_dash_m(tmp_path: Path) -> None:
    import ltml

    src = str(Path(ltml.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "ltml.data.describe", str(_table(tmp_path))],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src, "PATH": ""},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "7 images, 3 classes" in done.stdout


# ---------------------------------------------------------- unknown rows, limits, full names


def test_rows_of_unknown_labels_are_reported_apart() -> None:
    labels = torch.tensor([[1, 0], [1, 1], [-1, -1], [-1, -1], [0, -1], [0, 0]])
    r = describe_labels(labels, ["a", "b"], thresholds=(1, 2))
    assert r.images_unknown == 2
    assert r.images_with_unknown == 3
    assert r.images_without_label == 2  # rows 4 and 5; not the unknown rows 2 and 3
    assert r.mean_labels_per_image == pytest.approx(3 / 4)  # over the 4 rows with a known label
    assert r.unknown_per_class == pytest.approx([2 / 6, 3 / 6])
    text = r.format()
    assert "images: 2 entirely unknown, 1 partly" in text
    # shares of the images where the class is known: a 2 of 4, b 1 of 3
    assert re.search(r"\ba\s+2\s+50\.00%\s+33\.33%\s+head", text), text
    assert re.search(r"\bb\s+1\s+33\.33%\s+50\.00%\s+medium", text), text


@pytest.mark.filterwarnings("ignore:all .* classes are:UserWarning")
def test_unknown_share_per_class_against_numpy() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random((200, 7)) < 0.3).astype(np.int64)
    labels[rng.random(labels.shape) < np.linspace(0, 0.5, 7)] = -1
    labels[:9] = -1
    r = describe_labels(labels)
    np.testing.assert_allclose(r.unknown_per_class, (labels == -1).mean(0))
    assert r.images_unknown == int((labels == -1).all(1).sum())
    assert r.images_with_unknown == int((labels == -1).any(1).sum())
    known_rows = ~(labels == -1).all(1)
    assert r.mean_labels_per_image == pytest.approx((labels[known_rows] == 1).sum(1).mean())


def test_full_class_names() -> None:
    names = ["Enlarged Cardiomediastinum", "Lung Lesion", "Support Devices and more words"]
    labels = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    text = describe_labels(labels, names, thresholds=(1, 2)).format()
    for name in names:
        assert f" {name} " in text


def test_limits_that_follow_the_data() -> None:
    labels = torch.zeros(1000, 4, dtype=torch.int64)
    for k, count in enumerate((500, 120, 40, 5)):
        labels[:count, k] = 1
    by_share = describe_labels(labels, shares=(0.05, 0.2))
    assert by_share.thresholds == (50, 200)
    assert by_share.groups == {"head": [0], "medium": [1], "tail": [2, 3]}
    assert "group limits        shares (0.05, 0.2) of 1,000 images" in by_share.format()
    by_quantile = describe_labels(labels, quantiles=(0.25, 0.75))
    assert by_quantile.groups == {"head": [0], "medium": [1, 2], "tail": [3]}
    assert "quantiles (0.25, 0.75) of the class counts" in by_quantile.format()
    with pytest.raises(ValueError, match=r"give at most one of `thresholds`, `shares`"):
        describe_labels(labels, thresholds=(1, 2), quantiles=(0.2, 0.5))


def test_a_warning_when_one_group_holds_every_class(nih_cxr14: np.ndarray) -> None:
    with pytest.warns(
        UserWarning,
        match=r"all 14 classes are head \(>= 100 positives\) with the group limits \(20, 100\), "
        r"so the groups say nothing; .*for 112,120 images pass shares=\(0\.02, 0\.1\) \(here "
        r"2,243 and 11,212 images\) or quantiles=\(1/3, 2/3\)",
    ) as record:
        r = describe_labels(nih_cxr14)
    assert record[0].filename == __file__
    assert r.notes
    assert r.format().splitlines()[2].startswith("warning: all 14 classes are head")
    assert max(len(line) for line in r.format().splitlines()[:8]) <= 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = describe_labels(nih_cxr14, shares=(0.02, 0.1))
    assert [len(g) for g in r.groups.values()] == [3, 8, 3]
    assert not r.notes
    with pytest.warns(UserWarning, match=r"all 2 classes are tail .*e\.g\. quantiles"):
        describe_labels(torch.tensor([[1, 0], [0, 1]]), thresholds=(5, 10))


def test_command_on_a_gzip_table_with_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "labels.tsv.gz"
    rows = ["image\tpatient\tMass\tNo Finding Really Long Name"]
    rows += [
        f"{i}.png\t{i // 2}\t{1.0 if i < 3 else 0.0}\t{'' if i == 5 else 1.0}" for i in range(6)
    ]
    table.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    code = main([str(table), "--ignore-columns", "patient", "--quantiles", "0.4", "0.6"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"{table}: 6 images, 2 classes")
    assert "No Finding Really Long Name" in out
    assert "images: 0 entirely unknown, 1 partly" in out
    assert "quantiles (0.4, 0.6)" in out
    assert main([str(table), "--columns", "Mass"]) == 0
    assert "6 images, 1 classes" in capsys.readouterr().out
    assert main([str(table)]) == 1
    assert "leave it out with `ignore_columns`" in capsys.readouterr().err


def test_command_with_unknown_and_no_label_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "l.csv"
    table.write_text("image,tags,\na.png,cat|dog,\nb.png,NA,\nc.png,No Finding,\nd.png,dog,\n")
    assert main([str(table), "--no-label", "No Finding"]) == 0
    captured = capsys.readouterr()
    assert "3 classes" in captured.out  # NA became a class, with a warning on stderr
    assert "warning: " in captured.err
    assert "the tag 'NA' in column 'tags' looks like a missing value" in captured.err
    assert main([str(table), "--no-label", "No Finding", "--unknown", "NA"]) == 0
    captured = capsys.readouterr()
    assert "4 images, 2 classes" in captured.out
    assert "images: 1 entirely unknown, 0 partly" in captured.out
    assert "1 image(s) with none" in captured.out  # the No Finding row, not the NA one
    assert captured.err == ""
    assert main([str(table), "--unknown", "NA", "--columns", "cat"]) == 1
    assert "unknown tag 'dog'" in capsys.readouterr().err


def test_command_limits_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["x.csv", "--thresholds", "1", "2", "--shares", "0.1", "0.2"])
    assert "not allowed with argument" in capsys.readouterr().err
