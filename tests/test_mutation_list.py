"""The list of explained mutation survivors still names code that exists.

``benchmarks/mutation_equivalents.txt`` is keyed by a function's dotted name and the mutated line.
A move or a rename of that function (or an edit of that line) would otherwise leave its entries
matching nothing, silently: the mutant comes back as an unexplained survivor only in the next
(hour-long) mutation run. These checks read the source with :mod:`ast` and run in a second.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# A mutant changes one operator, number, name or argument: its line stays this close to the
# original (difflib's ratio). One that replaces a value by None (or drops a returned value)
# keeps the original's start instead.
SIMILAR = 0.75
JUMPS = frozenset({"break", "continue", "return"})


def _load_equivalents() -> dict[tuple[str, str], str]:
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "benchmarks" / "mutation.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutation", module)
    spec.loader.exec_module(module)
    return module.load_equivalents()


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _locate(dotted: str) -> tuple[str, Function] | None:
    """The source and definition of ``dotted`` (``pkg.module.function`` or ``...Class.method``)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        base = SRC.joinpath(*parts[:cut])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                text = path.read_text()
                scope: list[ast.stmt] = ast.parse(text).body
                found: ast.AST | None = None
                for name in parts[cut:]:
                    found = next((n for n in scope if getattr(n, "name", None) == name), None)
                    if found is None:
                        return None
                    scope = getattr(found, "body", [])
                return (text, found) if isinstance(found, Function) else None
    return None


EQUIVALENTS = _load_equivalents()
FUNCTIONS = sorted({function for function, _ in EQUIVALENTS})


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_listed_function_exists(function: str) -> None:
    assert _locate(function) is not None, (
        f"benchmarks/mutation_equivalents.txt names {function}, which is not defined: "
        "a move or rename must re-key its entries"
    )


@pytest.mark.parametrize(("function", "mutated"), sorted(EQUIVALENTS))
def test_every_mutated_line_is_one_edit_from_the_source(function: str, mutated: str) -> None:
    located = _locate(function)
    if located is None:
        pytest.fail(f"{function} is not defined (see test_every_listed_function_exists)")
    source = ast.get_source_segment(*located)
    assert source is not None
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    for line in mutated.splitlines():
        if line in JUMPS and JUMPS.intersection(lines):
            continue  # one jump statement swapped for another (break -> return)
        kept = line.split("None")[0].rstrip() if "None" in line else None
        if kept and any(s.startswith(kept) for s in lines):
            continue
        best = max(difflib.SequenceMatcher(None, line, s).ratio() for s in lines)
        assert best >= SIMILAR, (
            f"no line of {function} is one edit from the listed mutant {line!r} "
            f"(best match {best:.2f}): re-check the entry against today's code"
        )
