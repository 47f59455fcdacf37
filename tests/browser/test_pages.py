"""The built book in a real browser (Chromium through Playwright; see conftest.py).

Per page: it loads without console errors or failed requests; its math is typeset; nothing that
must stay readable (display equation, code cell, printed output) is cut off at 1280 px; at 400 px
the page does not scroll sideways and no formula is clipped; every internal link resolves; every image has alt text; a
chapter's launch buttons point at the repository configured in _config.yml. Once each: search,
a solution toggle, the dark-mode switch (figures keep a light background).
"""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from book_site import BUILD, ROOT, book_pages, ids_in, notebook_pages, params

PAGES = params(book_pages())
NOTEBOOK_PAGES = params(notebook_pages())


def _lines(items):
    return "\n  " + "\n  ".join(items)


@pytest.mark.parametrize("rel", PAGES)
def test_page_loads_without_errors(site, rel):
    problems = site.visit(rel)["problems"]
    assert not problems, f"{rel}:{_lines(problems)}"


@pytest.mark.parametrize("rel", PAGES)
def test_math_is_typeset(site, rel):
    seen = site.visit(rel)
    assert not seen["raw"], f"raw TeX delimiters in the visible text of {rel}:{_lines(seen['raw'])}"
    assert not seen["untypeset"], f"math left untypeset in {rel}:{_lines(seen['untypeset'])}"
    assert seen["containers"] >= seen["mathCount"]


@pytest.mark.parametrize("rel", PAGES)
def test_nothing_cut_off_at_desktop_width(site, rel):
    cut = site.visit(rel)["cut"]
    assert not cut, f"cut off at 1280 px in {rel}:{_lines(cut)}"


@pytest.mark.parametrize("rel", PAGES)
def test_no_sideways_scroll_at_400px(site, rel):
    narrow = site.visit(rel)["narrow"]
    assert narrow["scrollWidth"] <= narrow["clientWidth"], (
        f"{rel} is {narrow['scrollWidth']} px wide in a {narrow['clientWidth']} px window:"
        f"{_lines(narrow['wide'])}")


@pytest.mark.parametrize("rel", PAGES)
def test_no_formula_clipped_at_400px(site, rel):
    clipped = site.visit(rel)["narrow"]["clipped"]
    assert not clipped, f"inline formulas cut off (not scrollable) at 400 px in {rel}:{_lines(clipped)}"


@pytest.mark.parametrize("rel", PAGES)
def test_internal_links_resolve(site, rel):
    broken = []
    for url in sorted(set(site.visit(rel)["links"])):
        target = site.resolve(url)
        if target is None:
            continue
        path, fragment = target
        if not path.is_file():
            broken.append(f"{url}: no such file")
        elif fragment and path.suffix == ".html" and fragment not in ids_in(str(path)):
            broken.append(f"{url}: no id {fragment!r} in {path.relative_to(BUILD)}")
    assert not broken, f"broken links in {rel}:{_lines(broken)}"


def test_front_page_redirects_to_a_page(site):
    """index.html (not in PAGES) only redirects; its target must exist."""
    # (`site` makes sure there is a build.)
    index = (BUILD / "index.html").read_text(encoding="utf-8")
    target = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', index)
    assert target and (BUILD / target.group(1)).is_file(), target


# An alt text that is only a file name or a hash (what MyST-NB writes when none is given).
MEANINGLESS_ALT = re.compile(r"^([0-9a-f]{16,}|.*\.(png|svg|jpe?g))$", re.IGNORECASE)


@pytest.mark.parametrize("rel", PAGES)
def test_images_have_alt_text(site, rel):
    bad = [f"{img['src']}: alt {img['alt']!r}" for img in site.visit(rel)["images"]
           if not img["alt"] or MEANINGLESS_ALT.match(img["alt"])]
    assert not bad, f"images without a meaningful alt text in {rel}:{_lines(bad)}"


def _config():
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("rel", NOTEBOOK_PAGES)
def test_launch_buttons_point_at_the_repository(site, rel):
    config = _config()
    repo_url = config["repository"]["url"].rstrip("/").removesuffix(".git")
    branch = config["repository"].get("branch", "main")
    owner_repo = urlsplit(repo_url).path.strip("/")
    notebook = (config["repository"].get("path_to_book", "").strip("/") + "/"
                + rel.removesuffix(".html") + ".ipynb").lstrip("/")
    assert (ROOT / notebook).is_file(), f"{rel}: launch buttons would open {notebook}, not a file"
    launch = site.visit(rel)["launch"]

    assert launch["repository"] and launch["repository"].rstrip("/") == repo_url

    buttons = config["launch_buttons"]
    binder = urlsplit(launch["binder"] or "")
    expected_binder = urlsplit(buttons["binderhub_url"].rstrip("/"))
    assert (binder.scheme, binder.netloc) == (expected_binder.scheme, expected_binder.netloc)
    assert binder.path == f"/v2/gh/{owner_repo}/{branch}", launch["binder"]
    urlpath = parse_qs(binder.query).get("urlpath", [""])[0]
    assert urlpath.split("tree/", 1)[-1] == notebook, launch["binder"]

    assert launch["colab"] == (f"{buttons['colab_url'].rstrip('/')}/github/{owner_repo}"
                               f"/blob/{branch}/{notebook}")


def test_search_finds_jacobian(site, tab):
    # As a reader does it: the (one) search box in the sidebar, then Enter.
    tab.goto(site.url("book/preface.html"))
    boxes = tab.locator(".search-button__button:visible")
    assert boxes.count() == 1, "more than one search box is visible"
    boxes.click()
    tab.locator("#pst-search-dialog input[type=search]").fill("Jacobian")
    tab.keyboard.press("Enter")
    tab.wait_for_url("**/search.html?q=Jacobian*")
    tab.wait_for_selector("#search-results ul.search li a")
    # Sphinx adds the results one by one; the summary line appears when all are listed.
    tab.wait_for_function(
        "() => !!document.querySelector('#search-results p.search-summary')"
        " && document.querySelector('#search-results p.search-summary').textContent.trim()")
    hits = tab.eval_on_selector_all("#search-results ul.search li > a",
                                    "links => links.map(a => a.getAttribute('href'))")
    assert any("jacobian_products" in href for href in hits), hits


def _page_with(marker):
    for rel in book_pages():
        if marker in (BUILD / rel).read_text(encoding="utf-8"):
            return rel
    pytest.fail(f"no page of the book contains {marker!r}")


def test_solution_toggle_opens(site, tab):
    rel = _page_with('class="solution dropdown')
    tab.goto(site.url(rel))
    solution = tab.locator("div.solution.dropdown").first
    body = solution.locator(":scope > :not(.admonition-title)").first
    solution.scroll_into_view_if_needed()
    assert not body.is_visible(), f"{rel}: the first solution is open before any click"
    button = solution.locator("button.toggle-button")
    assert button.get_attribute("aria-expanded") == "false"
    button.click()
    body.wait_for(state="visible")
    assert button.get_attribute("aria-expanded") == "true"


def _luminance(css_color):
    channels = [float(c) for c in re.findall(r"[\d.]+", css_color)]
    red, green, blue = (c / 255 for c in channels[:3])
    alpha = channels[3] if len(channels) > 3 else 1.0
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) * alpha


def test_dark_mode_switch_keeps_figures_readable(site, tab):
    rel = _page_with('.png"')
    tab.goto(site.url(rel))
    start = tab.evaluate("document.documentElement.dataset.theme")
    assert start == "light", f"headless Chromium prefers light; the page starts {start!r}"
    for _ in range(3):  # the switch cycles through auto, light and dark
        tab.click(".theme-switch-button")
        if tab.evaluate("document.documentElement.dataset.theme") == "dark":
            break
    assert tab.evaluate("document.documentElement.dataset.theme") == "dark"
    assert _luminance(tab.evaluate("getComputedStyle(document.body).backgroundColor")) < 0.2

    figures = tab.evaluate("""() => [...document.querySelectorAll('article img')]
        .filter(img => /\\.png$/i.test(img.getAttribute('src')))
        .map(img => { const s = getComputedStyle(img);
                      return {src: img.getAttribute('src'), background: s.backgroundColor,
                              filter: s.filter, padding: parseFloat(s.paddingLeft)}; })""")
    assert figures, f"{rel}: no PNG figure found"
    for fig in figures:
        # Matplotlib draws dark ink on a transparent or white canvas: it needs a light backing,
        # not dimmed by a filter, with a margin so that axis labels do not touch the dark page.
        assert _luminance(fig["background"]) > 0.9, fig
        brightness = re.search(r"brightness\(([\d.]+)\)", fig["filter"])
        assert brightness is None or float(brightness.group(1)) >= 0.95, fig
        assert fig["padding"] >= 4, fig
