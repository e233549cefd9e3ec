"""examples/reproduce/leaderboard.py on a tiny demo: complete, resumable, failures kept."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

HARNESS = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
sys.path.insert(0, str(HARNESS))

import ltml_example.sweep as sweep  # noqa: E402
from ltml_example import Config  # noqa: E402

# The tiny demo of tests/test_examples.py: 40 images of the top digit, 2 iterations, 1 epoch.
TINY = ["--demo-max-count", "40", "--demo-test-size", "40", "--batch-size", "4",
        "--iters-per-epoch", "2", "--epochs", "1", "--no-plot"]  # fmt: skip


def _leaderboard(
    out: Path, rows: list[str], monkeypatch: pytest.MonkeyPatch, *extra: str
) -> dict[str, Any]:
    argv = ["leaderboard.py", "--rows", *rows, "--seeds", "0", "--output", str(out), *TINY, *extra]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(HARNESS / "leaderboard.py"), run_name="__main__")
    return json.loads((out / "leaderboard.json").read_text())  # type: ignore[no-any-return]


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b))


def test_tiny_leaderboard_is_complete_consistent_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    board = _leaderboard(tmp_path, ["erm", "tau-norm"], monkeypatch, "--jobs", "2")
    runs = {r["row"]: r for r in board["runs"]}
    assert set(runs) == {"erm", "erm-stage1", "tau-norm"}  # one stage-1 model, shared
    assert all(r["status"] == "ok" and not r["read_back"] for r in runs.values())
    assert (runs["tau-norm"]["stage"], runs["tau-norm"]["stage1"]) == (2, "erm-stage1")
    results = {row: json.loads(Path(r["results"]).read_text()) for row, r in runs.items()}
    # tau-norm loaded the shared stage-1 model, and kept its mAP
    assert results["tau-norm"]["stage1_checkpoint"] == str(tmp_path / "erm-stage1-seed0/last.pt")
    assert results["tau-norm"]["test"] == results["erm-stage1"]["test"]
    for row, r in runs.items():
        for group in ("total", "head", "medium", "tail"):
            assert _same(r["measured"][group], results[row]["test"][group]), (row, group)
    # one-stage runs store CF1 / OF1 per group, stage-2 runs the total only
    erm, tau = results["erm"]["test_thresholded"], results["tau-norm"]["test_thresholded"]
    assert _same(runs["erm"]["measured"]["CF1"], erm["CF1"]["total"])
    assert _same(runs["tau-norm"]["measured"]["OF1"], tau["OF1"])

    # the table: the header, then one line per row, best total first, with the paper's numbers
    text = (tmp_path / "leaderboard.md").read_text()
    for needed in ("demo", "seeds**: 0", "last epoch", "machine**", "wall time**", "`tau-norm`"):
        assert needed in text.split("\n\n")[1], needed
    table = [line for line in text.splitlines() if line.startswith("| `")]
    order = sorted(runs, key=lambda row: -results[row]["test"]["total"])
    assert [line.split("`")[1] for line in table] == order
    for line in table:
        row = line.split("`")[1]
        assert f"{results[row]['test']['total']:.2f}" in line
    erm = next(line for line in text.splitlines() if line.startswith("- `erm`"))
    assert erm.endswith("1 / 1 seeds; paper VOC-LT / COCO-LT 70.86 / 41.27)")  # PAPER totals
    assert "`tau-norm` †" in text
    assert [line["row"] for line in board["table"]] == order
    with Image.open(tmp_path / "leaderboard.png") as figure:
        assert figure.width == 900

    # a second invocation reads every run back and runs none
    def no_run(cfg: Config) -> None:
        pytest.fail(f"{cfg.out_dir()} was run again")

    monkeypatch.setattr(sweep, "attempt", no_run)
    capsys.readouterr()
    again = _leaderboard(tmp_path, ["erm", "tau-norm"], monkeypatch, "--jobs", "1")
    assert all(r["read_back"] and r["status"] == "ok" for r in again["runs"])
    assert again["table"] == board["table"]
    assert capsys.readouterr().out.count("(read back)") == 3


def test_failed_and_diverged_runs_are_listed_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sweep.run
    calls: list[str] = []

    def flaky(cfg: Config) -> dict[str, Any]:
        calls.append(cfg.out_dir().name)
        if cfg.out_dir().name == "erm-stage1-seed0":
            raise FloatingPointError("loss is NaN at epoch 1, step 0")
        payload = real(cfg)
        if cfg.row == "erm":
            payload["test"]["total"] = math.nan  # diverged
        return payload

    monkeypatch.setattr(sweep, "run", flaky)
    rows = ["erm", "u-only", "tau-norm"]
    board = _leaderboard(tmp_path, rows, monkeypatch, "--jobs", "1")
    runs = {r["row"]: r for r in board["runs"]}
    assert calls == ["erm-stage1-seed0", "erm-seed0", "u-only-seed0"]  # tau-norm never started
    assert runs.pop("u-only")["status"] == "ok"
    assert {row: r["status"] for row, r in runs.items()} == dict.fromkeys(runs, "failed")
    assert board["table"][0]["row"] == "u-only"  # the failed rows come last
    assert runs["erm-stage1"]["error"].startswith("FloatingPointError: loss is NaN")
    assert runs["erm"]["error"] == "diverged: test mAP is NaN"
    assert runs["tau-norm"]["error"] == "its stage-1 model erm-stage1 failed"
    text = (tmp_path / "leaderboard.md").read_text()
    assert "FloatingPointError: loss is NaN" in text
    assert text.count("0 / 1 seeds (failed: 0)") == 3

    # read back as failed; --retry-failed runs them again
    calls.clear()
    again = _leaderboard(tmp_path, rows, monkeypatch, "--jobs", "1")
    assert calls == []
    assert again["runs"] == [{**r, "read_back": True} for r in board["runs"]]
    monkeypatch.setattr(sweep, "run", real)
    board = _leaderboard(tmp_path, rows, monkeypatch, "--retry-failed")
    status = {r["row"]: (r["status"], r["read_back"]) for r in board["runs"]}
    assert status == {"erm-stage1": ("ok", False), "erm": ("ok", False),
                      "u-only": ("ok", True), "tau-norm": ("ok", False)}  # fmt: skip
