"""The documentation site as a reader sees it: built with ``mkdocs build --strict``, served on
127.0.0.1 and opened in a real browser (Debian's ``chromium``, driven by Playwright — never a
browser that ``playwright install`` downloads).

Checked on the tutorial, an op page and the API page: the maths is typeset by KaTeX (no raw ``$``,
``\\(`` or reST double backticks left in the text, no KaTeX error), every image loaded, nothing
was fetched from outside the site, the console stayed clean, and the search box finds pages. Every
internal link of the built site resolves to a file and, with a ``#fragment``, to an element with
that id. A screenshot of the tutorial is saved to ``runs/site/tutorial.png`` for a person to look at.

Without chromium the browser tests skip — except in CI (``CI`` set), where ``.ci/run`` installs
chromium, so a missing browser fails instead of silently skipping.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("JTAPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"tutorial": "tutorial/", "op page": "ops/elementwise/", "API": "api/"}
pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} — CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as CI builds it (strict), into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
                          check=False)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def server(site):
    """The built site over HTTP on 127.0.0.1, a free port, in a background thread."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, server: str, path: str):
    """Open ``path``; return (page, problems) where problems collects console errors, page errors,
    failed requests and any request that left 127.0.0.1."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:")) else
            problems.append(f"request outside the site: {r.url}"))
    page.goto(server + path, wait_until="networkidle")
    return page, problems


# Text a reader sees, outside code blocks and typeset maths.
PROSE_TEXT = """() => {
  const body = document.querySelector('.md-content').cloneNode(true);
  body.querySelectorAll('pre, code, .katex, script, style').forEach(e => e.remove());
  return body.innerText;
}"""
IMAGES = """() => Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"""


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_renders_maths_images_and_a_clean_console(browser, server, name):
    page, problems = open_page(browser, server, PAGES[name])
    try:
        page.wait_for_function("document.querySelectorAll('.arithmatex:not([data-rendered])').length === 0")
        typeset = page.evaluate("document.querySelectorAll('.md-content .katex').length")
        arithmatex = page.evaluate("document.querySelectorAll('.md-content .arithmatex').length")
        assert typeset == arithmatex, f"{name}: {arithmatex} formulas, {typeset} typeset by KaTeX"
        if name != "API":                                  # the API page is docstrings: Unicode, no LaTeX
            assert typeset >= 10, f"{name}: only {typeset} formulas typeset"
        assert page.evaluate("document.querySelectorAll('.katex-error').length") == 0, f"{name}: a KaTeX error"
        prose = page.evaluate(PROSE_TEXT)
        for raw in ("$", "\\(", "\\[", "``"):
            assert raw not in prose, f"{name}: {raw!r} shows literally: ...{prose[max(0, prose.find(raw) - 80):][:160]}"
        images = page.evaluate(IMAGES)
        broken = [src for src, loaded in images if not loaded]
        assert not broken, f"{name}: images that did not load: {broken}"
        if name == "tutorial":
            assert len(images) >= 5, images                  # the tutorial's drawings of the tape
            shot = ROOT / "runs" / "site" / "tutorial.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000
        assert not problems, f"{name}: {problems}"
    finally:
        page.close()


def test_every_op_page_typesets_its_derivations(browser, server, site):
    op_pages = sorted(p.parent.relative_to(site).as_posix() + "/" for p in (site / "ops").glob("*/index.html"))
    assert len(op_pages) >= 8, op_pages
    for path in op_pages + ["ops/", "forward-mode/"]:
        page, problems = open_page(browser, server, path)
        try:
            page.wait_for_function("document.querySelectorAll('.arithmatex:not([data-rendered])').length === 0")
            assert page.evaluate("document.querySelectorAll('.md-content .katex').length") > 0, path
            assert page.evaluate("document.querySelectorAll('.katex-error').length") == 0, path
            assert not problems, f"{path}: {problems}"
        finally:
            page.close()


def test_search_finds_pages(browser, server):
    page, problems = open_page(browser, server, "")
    try:
        count = "document.querySelectorAll('.md-search-result__item').length"
        page.click("input.md-search__input", timeout=10_000)
        page.keyboard.type("derivation", delay=20)                            # as a reader types
        page.wait_for_function(f"{count} > 0", timeout=30_000)
        titles = page.evaluate("Array.from(document.querySelectorAll('.md-search-result__item')).map(e => e.innerText)")
        assert any("derivation" in t.lower() for t in titles), titles
        page.fill("input.md-search__input", "")
        page.keyboard.type("zqxjvw", delay=20)                                # no page has it
        page.wait_for_function(f"{count} === 0", timeout=30_000)
        assert "No matching documents" in page.inner_text(".md-search-result__meta")
        assert not problems, problems
    finally:
        page.close()


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)
            if value and (key == "href" and tag in ("a", "link") or key == "src" and tag in ("img", "script")):
                self.links.append(value)


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_resolves(site):
    parsed = {p: _parse(p) for p in site.glob("**/*.html")}
    missing, checked = [], 0
    for page, links in parsed.items():
        base = "/" + page.relative_to(site).as_posix()
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("mailto:"):
                continue
            url = urlsplit(urljoin(base, link))
            target = site / unquote(url.path).lstrip("/")
            if url.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file():
                missing.append(f"{base}: {link} -> no file {target.relative_to(site)}")
            elif url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(url.fragment) not in ids:
                    missing.append(f"{base}: {link} -> no id {url.fragment!r} in {target.relative_to(site)}")
    assert checked > 500, checked
    assert not missing, "\n".join(missing[:40])
