"""The docs site as a reader sees it: every page opened in headless Chromium, with no network.

The site is built, served on 127.0.0.1 and opened page by page (tests/docs_probe.js), with every
host but 127.0.0.1 unreachable: a formula, a diagram or a font that needs a CDN fails here as it
would for a reader offline. Screenshots of a few key pages are kept in ``build/docs-screenshots``
(CI keeps them as artifacts). Needs Chromium (Debian: ``apt-get install chromium``); without it
the tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
import typing_extensions

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "docs-screenshots"
KEY_PAGES = {
    "getting-started": "getting-started/",
    "concepts": "concepts/",
    "losses": "api/losses/",
}
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Offline, whatever the machine: every host but the local server is unreachable.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def _page_url(source: Path) -> str:
    """The site address of a docs page, as mkdocs writes it (use_directory_urls)."""
    path = source.relative_to(ROOT / "docs").with_suffix("").as_posix()
    return "./" if path == "index" else (path.removesuffix("/index") + "/")


# Pages the site excludes (included into another page by a snippet) are not pages of their own.
EXCLUDED = {"results/leaderboard.md", "results/newer.md", "results/partial.md"}
PAGES = sorted(
    _page_url(p)
    for p in (ROOT / "docs").rglob("*.md")
    if p.relative_to(ROOT / "docs").as_posix() not in EXCLUDED
)


def _chromium(*args: str, timeout: float) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],  # type: ignore[list-item]
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def site(request):
    """The built site, served on 127.0.0.1 with the probe page; yields its base address."""
    if CHROMIUM is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser check")
        pytest.skip(reason)
    site_dir = request.getfixturevalue("built_site")
    probe = (ROOT / "tests" / "docs_probe.js").read_text()
    (site_dir / "__probe__.html").write_text(
        f"<!doctype html><body><script>const PAGES = {json.dumps(PAGES)};\n{probe}</script>"
    )
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def report(site):
    """What each page shows once rendered, from one Chromium run over all pages."""
    dom = _chromium(
        "--virtual-time-budget=600000", "--dump-dom", site + "__probe__.html", timeout=300
    )
    found = re.search(r'<pre id="report">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"the probe page did not report:\n{dom[-2000:]}"
    import html

    return json.loads(html.unescape(found[1]))


def test_key_pages_screenshots(site):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in KEY_PAGES.items():
        shot = SCREENSHOTS / f"{name}.png"
        shot.unlink(missing_ok=True)
        _chromium(
            "--window-size=1280,2400",
            "--virtual-time-budget=10000",
            f"--screenshot={shot}",
            site + url,
            timeout=120,
        )
        assert shot.stat().st_size > 10_000, f"{shot} is empty"


def _page(report, url):
    page = report[url]
    assert "error" not in page, page.get("error")
    return page


@pytest.mark.parametrize("url", PAGES)
def test_page_renders_offline(report, url):
    page = _page(report, url)
    assert not page["external"], f"requests leave the site: {page['external']}"
    assert not page["unrendered_math"], f"formulas not typeset: {page['unrendered_math']}"
    assert not page["math_errors"], f"formulas KaTeX cannot typeset: {page['math_errors']}"
    assert not page["unrendered_diagrams"], f"diagrams shown as code: {page['unrendered_diagrams']}"
    raw = re.findall(
        r".{0,30}(?:\\[()\[\]]|\$\$|\\[A-Za-z]{2,}|:math:|\.\. math::).{0,30}", page["prose"]
    )
    assert not raw, f"raw TeX in the page's text: {raw}"
    assert not [i for i in page["images"] if not i["loaded"]], f"images not shown: {page['images']}"


@pytest.mark.parametrize("url", PAGES)
def test_page_text_reads_as_typeset(report, url):
    page = _page(report, url)
    # Written maths belongs in formulas: "n_k^q" in prose is how a reader sees caret notation.
    caret = re.findall(r".{0,30}\w\^[\w{(].{0,30}", page["prose"])
    assert not caret, f"caret notation in the page's text: {caret}"
    rst = re.findall(r".{0,30}:(?:class|func|meth|mod|attr):`.{0,30}", page["prose"])
    assert not rst, f"reStructuredText roles in the page's text: {rst}"


@pytest.mark.parametrize("url", PAGES)
def test_page_layout(report, url):
    page = _page(report, url)
    assert page["headings"] == 1, f"{page['headings']} top-level headings"
    assert not page["lists_in_paragraphs"], (
        f"lists shown as a paragraph (no blank line before them): {page['lists_in_paragraphs']}"
    )
    # Figures are drawn for the column (docs/make_figures.py): shrunk, their text is unreadable.
    shrunk = [i["src"] for i in page["images"] if i["scale"] < 0.8]
    assert not shrunk, f"figures shrunk to under 80% of their size: {shrunk}"


@pytest.mark.parametrize("url", PAGES)
def test_nothing_is_cut_off(report, url):
    page = _page(report, url)
    assert not page["overflowing"], "wider than the column:\n" + "\n".join(page["overflowing"])


def _python_object(identifier: str) -> Any:
    """The object a heading id of the API pages names, e.g. ``ltml.data.class_counts``."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise LookupError(identifier)


def _signature_defaults(obj: Any) -> dict[str, Any]:
    """Each parameter's default (``inspect.Parameter.empty`` if required), over the public forms.

    An overloaded function's public forms are its overloads, not the implementation.
    """
    forms = typing_extensions.get_overloads(obj) or [obj]
    defaults: dict[str, Any] = {}
    for form in forms:
        for name, parameter in inspect.signature(form).parameters.items():
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                defaults.setdefault(name, parameter.default)
    return defaults


def _shown_value(text: str) -> Any:
    """The value a default shown as a literal, or as arithmetic on literals (``1 / 3``), is."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return text
    arithmetic = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Constant)
    if all(isinstance(node, arithmetic) for node in ast.walk(tree)):
        return eval(compile(tree, "<default>", "eval"), {"__builtins__": {}})
    try:
        return ast.literal_eval(text)
    except ValueError:
        return text


API_PAGES = [url for url in PAGES if url.startswith("api/")]


@pytest.mark.parametrize("url", API_PAGES)
def test_api_signatures_are_public(report, url):
    for obj in _page(report, url)["api"]:
        for text in obj["signatures"] + obj["bases"]:
            private = re.findall(r"(?<![\w.])_[A-Za-z]\w*", text)
            assert not private, f"{obj['id']} shows private names {private}:\n{text}"
        assert len(obj["signatures"]) <= 2, f"{obj['id']} shows {len(obj['signatures'])} signatures"


@pytest.mark.parametrize("url", API_PAGES)
def test_api_tables_list_names(report, url):
    for obj in _page(report, url)["api"]:
        for name in obj["rows"]:
            # A row whose name is prose is a paragraph the parser took for an entry.
            assert re.fullmatch(r"\*{0,2}\w+|\w+(, \w+)*|", name), f"{obj['id']}: row {name!r}"


@pytest.mark.parametrize("url", API_PAGES)
def test_api_defaults_are_the_signatures(report, url):
    checked = 0
    for obj in _page(report, url)["api"]:
        if not obj["defaults"]:
            continue
        target = _python_object(obj["id"])
        signature = _signature_defaults(target)
        for name, shown in obj["defaults"]:
            key = name.lstrip("*")  # the table's "**kwargs" is the signature's "kwargs"
            if key not in signature:
                continue
            default = signature[key]
            if default is inspect.Parameter.empty:
                assert shown == "required", f"{obj['id']}({name}) shows {shown!r}, is required"
            else:
                assert _shown_value(shown) == default, (
                    f"{obj['id']}({name}) shows default {shown!r}, the signature has {default!r}"
                )
            checked += 1
    if any(obj["defaults"] for obj in _page(report, url)["api"]):
        assert checked, "no default checked"
