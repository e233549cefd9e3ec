"""Shared fixtures: real VOC-LT / COCO-LT / NIH label matrices from ../shared/data (read-only)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(
    os.environ.get("LTML_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _load_split(name: str) -> tuple[np.ndarray, dict]:
    folder = SHARED_DATA / name
    if not (folder / "train_labels.tsv").is_file():
        pytest.skip(
            f"real label matrices not found at {folder} (the shared data folder sits beside the "
            "repository; set LTML_SHARED_DATA to point elsewhere)"
        )
    labels = np.loadtxt(
        folder / "train_labels.tsv", delimiter="\t", skiprows=1, usecols=None, dtype=str
    )[:, 1:].astype(np.int64)
    split = json.loads((folder / "split.json").read_text())
    return labels, split


@pytest.fixture(scope="session")
def voc_lt() -> tuple[np.ndarray, dict]:
    """VOC-LT training labels (1142, 20) and its split.json (classes, head/medium/tail, counts)."""
    return _load_split("voc_lt")


@pytest.fixture(scope="session")
def coco_lt() -> tuple[np.ndarray, dict]:
    """COCO-LT training labels (1909, 80) and its split.json."""
    return _load_split("coco_lt")


@pytest.fixture(scope="session")
def voc_pool() -> np.ndarray:
    """VOC2012 trainval labels (11540, 20): the pool VOC-LT and PLT-VOC are drawn from."""
    path = SHARED_DATA / "voc2012_trainval" / "labels.tsv"
    if not path.is_file():
        pytest.skip(f"VOC2012 trainval label pool not found at {path}")
    return np.loadtxt(path, delimiter="\t", skiprows=1, dtype=str)[:, 1:].astype(np.int64)


@pytest.fixture(scope="session")
def nih_cxr14() -> np.ndarray:
    """NIH ChestX-ray14 findings (112120, 14), 0 / 1 ("No Finding" = a row of zeros)."""
    path = SHARED_DATA / "nih_cxr14" / "labels.tsv.gz"
    if not path.is_file():
        pytest.skip(f"NIH ChestX-ray14 label table not found at {path}")
    with gzip.open(path, "rt") as table:
        return np.loadtxt(table, delimiter="\t", skiprows=1, usecols=range(2, 16), dtype=np.int64)


@pytest.fixture(scope="session")
def nih_cxr14_patients() -> np.ndarray:
    """NIH ChestX-ray14 patient id of each image (112120,), row order of ``nih_cxr14``."""
    path = SHARED_DATA / "nih_cxr14" / "labels.tsv.gz"
    if not path.is_file():
        pytest.skip(f"NIH ChestX-ray14 label table not found at {path}")
    with gzip.open(path, "rt") as table:
        return np.loadtxt(table, delimiter="\t", skiprows=1, usecols=1, dtype=np.int64)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once with ``mkdocs build --strict`` (a warning fails)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e .[docs]")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    site_dir = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return site_dir
