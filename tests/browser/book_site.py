"""The browser tests' helpers: the built HTML, served over HTTP; one tab that measures pages.

The book is read from ``BOOK_HTML`` (default: ``_build/html`` at the repository root). Without
it the tests skip, or fail when ``CI`` is set (CI runs ``make book`` first). Chromium is Debian's
(``apt-get install chromium``), driven by Playwright for Python through ``executable_path``:
Playwright's own browser download is never used. ``CHROMIUM`` overrides the executable.

Each page is loaded once (``Site.visit``) at desktop width; everything the per-page tests check
is measured during that one visit (also at 400 px, by resizing the same tab), so the whole suite
costs one page load per page plus a few interactions.
"""

import functools
import http.server
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html").resolve()
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home (updates, field trials),
# which on a closed network floods the log and slows every page.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 400, "height": 900}
TIMEOUT_MS = 20_000
# Generated pages that are not the book's own: the search page has its own test, index.html
# only redirects to the preface (its target is checked by the link test).
NOT_PAGES = {"search.html", "index.html"}


def unavailable(message):
    """Skip, or fail in CI (which installs everything the browser tests need)."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def missing(what):
    unavailable(f"{what}; run `make book` first (or set BOOK_HTML to a built book)")


def book_pages():
    """Relative paths of the pages to test (empty when there is no build)."""
    if not (BUILD / "index.html").is_file():
        return []
    skip_dirs = {"_static", "_sources", "_images", "mathjax"}
    pages = []
    for path in sorted(BUILD.rglob("*.html")):
        rel = path.relative_to(BUILD)
        if skip_dirs & set(rel.parts[:-1]) or rel.as_posix() in NOT_PAGES:
            continue
        pages.append(rel.as_posix())
    return pages


def notebook_pages():
    """Pages built from a notebook (their source is copied to _sources as .ipynb)."""
    return [p for p in book_pages() if (BUILD / "_sources" / p).with_suffix(".ipynb").is_file()]


def params(pages):
    # Without a build there is still one test case, which skips (or fails in CI) in `site`.
    return pages or ["(no build)"]


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value)


@functools.cache
def ids_in(path):
    parser = _Ids()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return frozenset(parser.ids)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# Measured once per page at desktop width, in the page (see Site.visit).
MEASURE_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const describe = (el) => {
    const math = el.closest('mjx-container');
    let what = el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 70);
    if (math && window.MathJax && MathJax.startup.document) {
      const item = [...MathJax.startup.document.math].find(i => i.typesetRoot === math);
      if (item) what = item.math.trim().replace(/\\s+/g, ' ').slice(0, 70);
    }
    return `${el.tagName.toLowerCase()}: ${what} (${el.scrollWidth - el.clientWidth} px too wide)`;
  };
  // Raw TeX left in visible text, outside code, math and scripts.
  const raw = [];
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  const skip = 'pre, code, script, style, mjx-container, textarea, .highlight';
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    if (!/\\$\\$|\\\\\\(|\\\\\\)|\\\\\\[|\\\\\\]|\\\\begin\\{/.test(text)) continue;
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || !visible(parent)) continue;
    raw.push(text.trim().slice(0, 80));
  }
  const mathElements = [...document.querySelectorAll('span.math, div.math')];
  const untypeset = mathElements.filter(el => !el.querySelector('mjx-container'))
                                .map(el => el.textContent.trim().slice(0, 80));
  // What must fit at desktop width: display equations, code cells, printed outputs.
  const blocks = document.querySelectorAll(
    'mjx-container[display="true"], div.cell_input pre, div.cell_output pre, ' +
    'div.cell_output .output, div.highlight pre');
  const cut = [...blocks].filter(el => visible(el) && el.scrollWidth > el.clientWidth + 1)
                         .map(describe);
  const images = [...document.querySelectorAll('img')].map(img => ({
    src: img.getAttribute('src'), alt: (img.getAttribute('alt') || '').trim()}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const launch = {binder: null, colab: null, repository: null};
  for (const a of document.querySelectorAll('.dropdown-launch-buttons a[href]')) {
    const name = a.textContent.trim().toLowerCase();
    if (name in launch) launch[name] = a.href;
  }
  const repository = document.querySelector('a.btn-source-repository-button');
  launch.repository = repository && repository.href;
  return {raw, untypeset, mathCount: mathElements.length,
          containers: document.querySelectorAll('mjx-container').length,
          cut, images, links, launch};
}
"""

NARROW_JS = """
() => {
  const doc = document.documentElement;
  const wide = [];
  if (doc.scrollWidth > doc.clientWidth) {
    // Name the widest elements that stick out (for the failure message).
    for (const el of document.querySelectorAll('main *')) {
      const r = el.getBoundingClientRect();
      if (r.right > doc.clientWidth + 1 && !el.closest('pre, mjx-container, .highlight'))
        wide.push(`${el.tagName.toLowerCase()}.${el.className}: right edge ${Math.round(r.right)}`);
      if (wide.length >= 5) break;
    }
  }
  // A formula wider than its line cannot wrap (MathJax 3): it must scroll, not be clipped.
  const clipped = [];
  for (const span of document.querySelectorAll('main span.math')) {
    const math = span.querySelector('mjx-math');
    if (!math || !span.offsetWidth) continue;
    const overflow = getComputedStyle(span).overflowX;
    if (math.getBoundingClientRect().width > span.clientWidth + 1
        && overflow !== 'auto' && overflow !== 'scroll')
      clipped.push(`${span.textContent.slice(0, 60)} (overflow-x: ${overflow})`);
  }
  return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, wide, clipped};
}
"""


class Site:
    """The served book and one browser tab; caches what each page visit measured."""

    def __init__(self, base_url, browser):
        self.base = base_url
        self.browser = browser
        self.context = browser.new_context(viewport=DESKTOP)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.problems = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        self.page.on("requestfailed",
                     lambda req: self.problems.append(f"request failed: {req.url} {req.failure}"))
        self.page.on("response", self._on_response)
        # Every visit is a reader's first: nothing remembered from the previous page.
        self.context.add_init_script("try { localStorage.clear(); } catch (e) {}")
        self._visits = {}

    def _on_console(self, message):
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _on_response(self, response):
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def url(self, rel):
        return self.base + rel

    def visit(self, rel):
        """Load ``rel`` once; return what was measured (cached for the other tests)."""
        if rel not in self._visits:
            self.page.goto("about:blank")  # resize an empty tab, not the last page
            self.page.set_viewport_size(DESKTOP)
            self.problems.clear()
            self.page.goto(self.url(rel), wait_until="load")
            result = self.page.evaluate(MEASURE_JS)
            self.page.set_viewport_size(NARROW)
            result["narrow"] = self.page.evaluate(NARROW_JS)
            result["problems"] = list(self.problems)
            self._visits[rel] = result
        return self._visits[rel]

    def resolve(self, url):
        """For a same-origin URL: (file in the build, fragment); else None."""
        if not url.startswith(self.base):
            return None
        path, fragment = urldefrag(url)
        rel = unquote(urlsplit(path).path).lstrip("/")
        target = BUILD / rel
        if rel == "" or target.is_dir():
            target = target / "index.html"
        return target, unquote(fragment)
