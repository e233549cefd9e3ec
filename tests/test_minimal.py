"""examples/minimal.py runs end to end, and stays a file a reader can copy (short, public names)."""

from __future__ import annotations

import ast
import math
import runpy
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

MINIMAL = Path(__file__).resolve().parents[1] / "examples" / "minimal.py"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # A small network gains nothing from intra-op threads, and oversubscribed threads are slow.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_one_epoch_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = runpy.run_path(str(MINIMAL))  # not as __main__: defines, runs nothing
    assert capsys.readouterr().out == ""
    with warnings.catch_warnings():
        # a renamed or deprecated ltml name (FutureWarning) must not reach the reader's copy
        warnings.simplefilter("error", FutureWarning)
        results = namespace["main"](["--epochs", "1", "--seed", "1"])
    assert list(results) == ["mAP", "head", "medium", "tail", "CF1", "OF1"]
    for name, value in results.items():
        assert math.isfinite(value), name
        assert 0 <= value <= 100, name
    assert results["mAP"] > 0
    out = capsys.readouterr().out
    assert "epoch 1/1: loss " in out
    printed = next(line for line in out.splitlines() if line.startswith("test %: "))
    assert printed == "test %: " + "  ".join(f"{k} {v:.2f}" for k, v in results.items())


def test_it_stays_a_file_to_copy() -> None:
    source = MINIMAL.read_text()
    assert len(source.splitlines()) <= 200
    tree = ast.parse(source)
    private = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_")
    ]
    assert private == []
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ltml")
        for alias in node.names
    }
    assert not any(name.startswith("_") for name in imported)
    # inference goes through head.predict; a head is only ever called on two feature batches
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "head"
    ]
    assert calls
    assert all(len(call.args) != 1 or isinstance(call.args[0], ast.Starred) for call in calls)
    assert "head.predict(" in source
