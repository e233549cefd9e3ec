"""benchmarks/gpu_check.py runs: its dry mode (CPU, toy sizes) writes both reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check


@pytest.mark.slow
def test_dry_run_writes_the_reports(tmp_path: Path) -> None:
    report = gpu_check.main(["--dry-run", "--out", str(tmp_path), "--rows", "ltml", "mixup"])
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["dry_run"] is True
    assert [r["row"] for r in saved["rows"]] == ["ltml", "mixup"]
    assert all(r["finite"] for r in saved["rows"])
    assert saved["tests"]["returncode"] == 0  # the GPU tests are at least collected
    assert saved["metrics"]["ap_max_diff"] == 0.0  # CPU against CPU here
    assert set(saved["branch_ratio"]) == {"eager", "compiled"}
    assert saved["loader"]["device_cache"]["images_per_s"] > 0
    page = (tmp_path / "report.md").read_text()
    assert page.startswith("# GPU check (dry run")
    assert "| ltml | bf16 | True |" in page
    assert report["seconds"] > 0


def test_refuses_to_run_without_cuda_unless_dry(capsys: pytest.CaptureFixture[str]) -> None:
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit):
        gpu_check.main(["--out", "unused"])
    assert "no CUDA device: run with --dry-run" in capsys.readouterr().err
