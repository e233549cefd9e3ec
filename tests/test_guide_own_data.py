"""The "Your own data" guide runs as written: its Python blocks, then its shell commands."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import ltml
from markdown_blocks import fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guides" / "own-data.md"


def _blocks(language: str) -> list[str]:
    return fenced_blocks(GUIDE, language)


def test_the_guide_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__guide__"}
    for block in _blocks("python"):  # makes my_data/ in the working directory
        exec(compile(block, str(GUIDE), "exec"), namespace)
    assert (tmp_path / "my_data" / "labels.csv").is_file()

    # The commands run from the repository root: give them its examples/ and this Python.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python"  # a script, not a link: a linked venv Python loses its venv
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(Path(ltml.__file__).resolve().parents[1]),
        "OMP_NUM_THREADS": "1",
    }
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    for command in commands:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, env=env, timeout=300, check=False
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert (tmp_path / "my_data" / "profile.png").is_file()
    assert (tmp_path / "runs" / "my-data" / "results.json").is_file()
    assert "stratified split of train" in done.stdout
    # the guide's run starts from random weights: nothing frozen, and the echo says why
    assert "freeze_stem          = False  (--weights none: " in done.stdout
    assert "bn_eval              = False  (--weights none: " in done.stdout
