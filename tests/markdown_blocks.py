"""Fenced code blocks of a Markdown page, for the tests that run the docs as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A whole file included into a block by pymdownx.snippets (mkdocs.yml: paths from the root).
SNIPPET = re.compile(r'^--8<-- "([^":]+)"$')


def fenced_blocks(page: Path, language: str) -> list[str]:
    """Return the bodies of the page's ```<language> blocks, in order, snippets included."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in page.read_text().splitlines():
        if current is None and line.strip() == f"```{language}":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            included = SNIPPET.match(line.strip())
            current.append((ROOT / included[1]).read_text().rstrip("\n") if included else line)
    return blocks
