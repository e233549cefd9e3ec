"""A griffe extension: show the docstrings on the Markdown docs site as ``help()`` readers see them.

The docstrings are NumPy style with the roles and directives that ``help()`` readers and Sphinx
users expect (``:math:``, ``:class:``, ``.. math::``, ``.. warning::``). mkdocstrings renders
docstrings as Markdown, so once the package is loaded this

- turns each docstring's reStructuredText into its Markdown equivalent: math for KaTeX
  (pymdownx.arithmatex), links for cross-references to documented objects, admonitions;
- makes the parsed sections agree with the code and the text: every default shown is the
  signature's (the NumPy parser gives every name of an ``a, b : float`` line the first one's
  default, and a ``{"x", "y"}`` type its first choice), and every type is shown as written
  (the parser would show ``Tensor, shape (C,)`` as the Python tuple ``(Tensor, shape(C))``);
- shows public classes with public bases: a private base class is replaced by its own bases,
  its public members being shown as inherited (``inherited_members`` in ``mkdocs.yml``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|obj|exc|data):`(?P<short>~?)(?P<target>[^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. (?P<name>math|warning|note)::[ \t]*(?P<arg>.*)\n")
_CHOICES = re.compile(r"^\{(?P<choices>.+)\}")


def _directive_body(lines: list[str], start: int, indent: str) -> tuple[list[str], int]:
    """Return the indented block after a directive line, and the index of the next line."""
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent + " ")):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    first = start  # a blank line between the directive and its content (no blank in a $$ block)
    while first < end and not lines[first].strip():
        first += 1
    return textwrap.dedent("\n".join(lines[first:end])).splitlines(), end


def to_markdown(text: str, resolve: Callable[[str], str | None] = lambda target: None) -> str:
    """Rewrite the reStructuredText roles and directives of one docstring as Markdown.

    ``resolve`` maps the target of a cross-reference role to the path of the documented object
    it names, or to None: a resolved role becomes a link, any other a code span.
    """
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
        # Text on the directive line itself starts the content (`.. math:: x = 1`).
        body = [match["arg"], *body] if match["arg"].strip() else body
        if name == "math":
            out += [f"{indent}$$", *(indent + line for line in body), f"{indent}$$"]
        else:
            out += [f"{indent}!!! {name}", *(f"{indent}    {line}" for line in body)]
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda m: f"${m[1]}$", text)

    def reference(m: re.Match[str]) -> str:
        target = m["target"]
        code = f"`{target.rsplit('.', 1)[-1] if m['short'] else target}`"
        path = resolve(target)
        # Optional: an object that is not on the site (an attribute listed in its class's table)
        # stays a code span.
        return code if path is None else f'<autoref identifier="{path}" optional>{code}</autoref>'

    return _ROLE.sub(reference, text)


def _resolver(obj: griffe.Object, loader: griffe.GriffeLoader) -> Callable[[str], str | None]:
    """Resolve cross-reference targets as Python resolves names in ``obj``'s scope."""

    def resolve(target: str) -> str | None:
        first, _, rest = target.partition(".")
        try:
            path = obj.resolve(first) if first not in loader.modules_collection else first
            path = f"{path}.{rest}" if rest else path
            found = loader.modules_collection[path]
        except (griffe.NameResolutionError, KeyError, griffe.AliasResolutionError):
            return None  # outside the package (torch ...): a code span
        return None if any(part.startswith("_") for part in found.path.split(".")) else path

    return resolve


def _written_types(docstring: griffe.Docstring) -> dict[str, str]:
    """Map how the parser renders each type of the docstring's entries to the text written.

    An entry's first line is ``name : type``, ``name, name : type`` or (under Returns) ``type``,
    at the docstring's own indentation.
    """
    written = {}
    for line in docstring.value.splitlines():
        if not line or line[0].isspace():
            continue
        text = line.split(" : ", 1)[-1]
        text = re.sub(r",\s+(default(?: |: |=).+|optional)$", "", text)
        choices = _CHOICES.match(text)
        parsed = griffe.parse_docstring_annotation(
            choices["choices"] if choices else text, docstring, log_level=griffe.LogLevel.debug
        )
        written.setdefault(str(parsed), text)
    return written


def _agree_with_code(obj: griffe.Object) -> None:
    """Show the signature's defaults and the written types in the parsed docstring sections."""
    assert obj.docstring is not None
    written = _written_types(obj.docstring)
    # The defaults of an overloaded function's public forms are those of its overloads.
    forms: list[griffe.Class | griffe.Function] = []
    if isinstance(obj, griffe.Function):
        forms = obj.overloads or [obj]
    elif isinstance(obj, griffe.Class):
        forms = [obj]
    defaults: dict[str, str | griffe.Expr | None] = {}
    for form in forms:
        for parameter in form.parameters:
            defaults.setdefault(parameter.name, parameter.default)
    for section in obj.docstring.parsed:
        if not isinstance(section.value, list):
            continue
        for item in section.value:
            if not isinstance(item, griffe.DocstringElement):
                continue
            if isinstance(item.annotation, griffe.Expr):
                item.annotation = written.get(str(item.annotation), item.annotation)
            if isinstance(item, griffe.DocstringParameter) and item.name in defaults:
                item.value = defaults[item.name]


def _public_bases(cls: griffe.Class) -> list[str | griffe.Expr]:
    """Return the bases of ``cls``, each private one replaced by its own (public) bases.

    A base is private by its name or by its module's (``ltml.losses._core.LabelLoss``).
    """
    bases: list[str | griffe.Expr] = []
    for base in cls.bases:
        name = base.canonical_path if isinstance(base, griffe.Expr) else base
        if not any(part.startswith("_") for part in name.split(".")):
            bases.append(base)
        elif isinstance(base, griffe.ExprName) and isinstance(base.resolved, griffe.Class):
            bases += [b for b in _public_bases(base.resolved) if str(b) not in map(str, bases)]
    return bases


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and everything defined in it (not what it imports)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


def _double_quotes(function: griffe.Function) -> None:
    """Write string defaults as the code does, ``"mean"``: griffe gives them as ``'mean'``."""
    for form in [function, *(function.overloads or [])]:
        for parameter in form.parameters:
            default = parameter.default
            if isinstance(default, str) and re.fullmatch(r"'[^'\"\\]*'", default):
                parameter.default = f'"{default[1:-1]}"'


class RSTDocstrings(griffe.Extension):
    """Prepare every docstring of the documented package for the site once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite each docstring, fix its parsed sections, the defaults' quotes and the bases."""
        for obj in _objects(pkg):
            if isinstance(obj, griffe.Function):
                _double_quotes(obj)
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value, _resolver(obj, loader))
                _agree_with_code(obj)
            if isinstance(obj, griffe.Class) and not obj.name.startswith("_"):
                # Members inherited through a private base are kept once the base is not shown.
                for name, member in obj.inherited_members.items():
                    obj.members[name] = member
                obj.bases = _public_bases(obj)
