"""The documentation site builds without a warning (a broken reference or page fails)."""

import sys
from pathlib import Path

import pytest

from markdown_blocks import fenced_blocks

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_builds_strict(built_site):
    assert (built_site / "api" / "metrics" / "index.html").is_file()


def _python_blocks(page: Path) -> list[str]:
    """The ```python code blocks of a Markdown page, in order.

    Fragments that need what a test machine lacks (GPUs, a user's dataset) are fenced as ```py
    instead, and the page says what they need.
    """
    return fenced_blocks(page, "python")


PAGES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if _python_blocks(p))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_code_blocks_run(page, monkeypatch, tmp_path):
    # Every ```python block of the README and the docs runs, the blocks of a page in sequence.
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for block in _python_blocks(page):
        exec(compile(block, str(page), "exec"), namespace)


def _public_objects():
    import inspect

    import ltml

    for module in (ltml, ltml.data, ltml.functional, ltml.losses):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj


# Result containers are shown by the examples of the functions that return them.
RESULT_TYPES = {
    "CorrectorOutput",
    "MAPResult",
    "LTMLLossOutput",
    "DualBranchOutput",
    "MixedBatch",
    "PLTSubset",
    "LabelReport",
    "LabelTable",
    "OpenImagesLabels",
    "ThresholdedMetrics",
    "ThresholdedSummary",
}


@pytest.mark.parametrize(("name", "obj"), list(_public_objects()), ids=lambda x: str(x))
def test_every_public_name_has_an_example_and_a_reference_entry(name, obj):
    short = name.split(".")[-1]
    if short not in RESULT_TYPES:
        assert "Examples\n" in (obj.__doc__ or ""), f"{name} has no Examples section"
    reference = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    # Re-exported names may be documented under the module that defines them.
    entries = {
        line.split()[-1].rsplit(".", 1)[-1]
        for line in reference.splitlines()
        if line.startswith("::: ltml")
    }
    assert short in entries, f"{name} has no entry in docs/api"


def test_rst_markup_becomes_markdown_for_the_site():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        from rst_docstrings import to_markdown
    finally:
        sys.path.pop(0)
    text = (
        "Loss of :class:`~ltml.losses.BCE` and :func:`ltml.functional.bce`, with :math:`p_k`.\n"
        "\n"
        "    .. math::\n"
        "        L = -\\log p\n"
        "\n"
        ".. warning::\n"
        "    Give them to the optimizer.\n"
        "\n"
        "Parameters\n"
    )
    assert to_markdown(text) == (
        "Loss of `BCE` and `ltml.functional.bce`, with $p_k$.\n"
        "\n"
        "    $$\n"
        "    L = -\\log p\n"
        "    $$\n"
        "\n"
        "!!! warning\n"
        "    Give them to the optimizer.\n"
        "\n"
        "Parameters"
    )
    # A formula written on the directive line itself is kept, and a resolved role is a link.
    assert to_markdown(".. math:: P(k) = n_k\n", lambda target: None) == "$$\nP(k) = n_k\n$$"
    # A blank line after the directive is not part of the formula: a $$ block has none inside.
    assert to_markdown(".. math::\n\n    a = b\n    c\n") == "$$\na = b\nc\n$$"
    assert to_markdown(":func:`~ltml.functional.bce`", lambda target: target) == (
        '<autoref identifier="ltml.functional.bce" optional>`bce`</autoref>'
    )
