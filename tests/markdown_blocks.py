"""Fenced code blocks of a Markdown page, for the tests that run the docs as written."""

from __future__ import annotations

from pathlib import Path


def fenced_blocks(page: Path, language: str) -> list[str]:
    """Return the bodies of the page's ```<language> blocks, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in page.read_text().splitlines():
        if current is None and line.strip() == f"```{language}":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks
