"""A griffe extension: render the docstrings' reStructuredText markup in the Markdown docs site.

The docstrings are NumPy style with the roles and directives that ``help()`` readers and Sphinx
users expect (``:math:``, ``:class:``, ``.. math::``, ``.. warning::``). mkdocstrings renders
docstrings as Markdown, so before they are parsed this turns each into its Markdown equivalent:
math for MathJax (pymdownx.arithmatex), code spans for cross-references, admonitions.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|obj|exc|data):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. (?P<name>math|warning|note)::[ \t]*(?P<arg>.*)\n")


def _directive_body(lines: list[str], start: int, indent: str) -> tuple[list[str], int]:
    """Return the indented block after a directive line, and the index of the next line."""
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent + " ")):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return textwrap.dedent("\n".join(lines[start:end])).splitlines(), end


def to_markdown(text: str) -> str:
    """Rewrite the reStructuredText roles and directives of one docstring as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i] + "\n")
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent, name = match["indent"], match["name"]
        body, i = _directive_body(lines, i + 1, indent)
        if name == "math":
            out += [f"{indent}$$", *(indent + line for line in body), f"{indent}$$"]
        else:
            out += [f"{indent}!!! {name}", *(f"{indent}    {line}" for line in body)]
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda m: f"${m[1]}$", text)
    return _ROLE.sub(lambda m: f"`{m[1].rsplit('.', 1)[-1] if m[0].count('~') else m[1]}`", text)


class RSTDocstrings(griffe.Extension):
    """Convert every docstring of the documented package when griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is created."""
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
