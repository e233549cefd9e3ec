"""``python -m ltml``: the versions and devices a bug report needs.

``python -m ltml --version`` prints the version alone; ``python -m ltml describe labels.csv``
prints the long-tail report of a label table (the same as ``python -m ltml.data.describe``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys

# Optional packages and the extra that installs each.
_OPTIONAL = {
    "scikit-learn": "examples, test",
    "tqdm": "examples",
    "matplotlib": "examples",
    "hypothesis": "test",
    "pytest": "test",
    "torchmetrics": "bench",
    "lightning": "frameworks, test",
    "accelerate": "frameworks, test",
    "mkdocs-material": "docs",
    "mkdocstrings": "docs",
}


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> str:
    """Describe the versions of ltml, Python, torch, torchvision, numpy, devices and extras."""
    import torch
    import torchvision

    import ltml

    lines = [
        f"ltml-components {ltml.__version__}",
        f"python          {platform.python_version()} ({sys.executable})",
        f"platform        {platform.platform()}",
        f"torch           {torch.__version__}",
        f"torchvision     {torchvision.__version__}",
        f"numpy           {_version('numpy')}",
    ]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"cuda            {torch.version.cuda}: {names}")
    else:
        lines.append(f"cuda            not available (built for {torch.version.cuda or 'CPU'})")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        lines.append("mps             available")
    lines.append(f"cpu threads     {torch.get_num_threads()}")
    lines.append("optional packages (extra):")
    width = max(map(len, _OPTIONAL))
    lines += [
        f"  {name:<{width}}  {_version(name):<14} ({extra})" for name, extra in _OPTIONAL.items()
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the environment report, or the version alone with ``--version``.

    ``describe ...`` runs the long-tail report of a label table (:mod:`ltml.data.describe`).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["describe"]:
        from .data.describe import main as describe

        raise SystemExit(describe(argv[1:], prog="python -m ltml describe"))
    parser = argparse.ArgumentParser(
        prog="python -m ltml",
        description="Print the versions and devices to paste into a bug report. "
        "'python -m ltml describe TABLE' prints the long-tail report of a label table "
        "(--help after it for its options).",
    )
    parser.add_argument("--version", action="store_true", help="print the version alone")
    args = parser.parse_args(argv)
    if args.version:
        import ltml

        print(ltml.__version__)
    else:
        print(environment_report())


if __name__ == "__main__":
    main()
