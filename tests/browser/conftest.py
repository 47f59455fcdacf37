"""Fixtures for the browser tests (helpers and what they measure: book_site.py)."""

import functools
import http.server
import threading
from pathlib import Path

import pytest
from book_site import (
    BUILD,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    TIMEOUT_MS,
    QuietHandler,
    Site,
    missing,
    unavailable,
)


@pytest.fixture(scope="session")
def server():
    if not (BUILD / "index.html").is_file():
        missing(f"no built book at {BUILD}")
    handler = functools.partial(QuietHandler, directory=str(BUILD))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser(server):
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("Playwright is not installed (pip install -r requirements.txt)")
    if not Path(CHROMIUM).is_file():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def site(server, browser):
    site = Site(server, browser)
    yield site
    site.context.close()


@pytest.fixture
def tab(site):
    """A fresh tab (own storage) for tests that click; closed afterwards."""
    context = site.browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()
