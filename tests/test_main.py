"""``python -m ltml``: the environment report users paste into a bug report."""

import subprocess
import sys

import torch
import torchvision

import ltml


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ltml", *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_version_alone():
    assert _run("--version").strip() == ltml.__version__


def test_report_names_versions_devices_and_extras():
    lines = _run().splitlines()
    assert lines[0] == f"ltml-components {ltml.__version__}"
    fields = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    assert torch.__version__ in fields["torch"]
    assert torchvision.__version__ in fields["torchvision"]
    assert ("not available" in fields["cuda"]) != torch.cuda.is_available()
    extras = {line.split()[0]: line for line in lines if line.startswith("  ")}
    import sklearn

    assert sklearn.__version__ in extras["scikit-learn"]
    assert set(extras) >= {"tqdm", "matplotlib", "torchmetrics", "mkdocs-material", "lightning"}


def test_unknown_flag_is_an_error():
    result = subprocess.run(
        [sys.executable, "-m", "ltml", "--bogus"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr


def test_describe_is_the_table_report(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("image,tags\na.png,cat|dog\nb.png,dog\n")
    out = _run("describe", str(table), "--thresholds", "1", "2")
    assert out.startswith(f"{table}: 2 images, 2 classes")
    result = subprocess.run(
        [sys.executable, "-m", "ltml", "describe", str(tmp_path / "none.csv")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "error: " in result.stderr
    assert "none.csv" in result.stderr


def test_describe_user_errors_are_one_line(tmp_path, capsys):
    """A bad option value ends in one ``error:`` line on stderr (exit 1), never a traceback."""
    from ltml.data.describe import main

    table = tmp_path / "labels.csv"
    table.write_text("image,a,b\nx.png,1,0\ny.png,0,1\n")
    for option in (
        ["--delimiter", ";;"],
        ["--delimiter", ""],
        ["--delimiter", '"'],
        ["--max-classes", "-3"],
        ["--figure", str(tmp_path / "missing" / "profile.png")],
        ["--few", "0"],
    ):
        assert main([str(table), *option]) == 1, option
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (option, err)
        assert err[0].startswith("error: "), (option, err)
        assert "Traceback" not in err[0]


def test_describe_reads_a_typed_tab_delimiter(tmp_path, capsys):
    from ltml.data.describe import main

    table = tmp_path / "labels.txt"
    table.write_text("image\ta\tb\nx.png\t1\t0\ny.png\t0\t1\n")
    assert main([str(table), "--delimiter", "\\t"]) == 0
    assert "2 images, 2 classes" in capsys.readouterr().out
