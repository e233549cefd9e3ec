from __future__ import annotations

import math
import subprocess
import sys
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
