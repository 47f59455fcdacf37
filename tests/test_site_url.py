"""The published site's address follows the repository URL, written once in _config.yml."""

import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
_spec = importlib.util.spec_from_file_location("site_url", ROOT / "_ext" / "site_url.py")
site_url = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site_url)


def _repository_url():
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


@pytest.mark.parametrize(
    ("repository", "site"),
    [
        ("https://github.com/bptt-derived/bptt-derived", "https://bptt-derived.github.io/bptt-derived/"),
        ("https://github.com/Ada/my-fork.git", "https://ada.github.io/my-fork/"),
        ("https://github.com/ada/book/", "https://ada.github.io/book/"),
    ],
)
def test_pages_address_of_a_repository(repository, site):
    assert site_url.pages_url(repository) == site


def test_a_non_github_url_is_refused_with_its_value():
    with pytest.raises(ValueError, match=r"repository\.url.*'https://gitlab\.com/a/b'"):
        site_url.pages_url("https://gitlab.com/a/b")


def test_the_built_pages_name_their_canonical_address():
    if not (HTML / "index.html").exists():
        message = "no built book in _build/html: run `make book` first"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = site_url.pages_url(_repository_url())
    page = (HTML / "book" / "ch01_unrolling.html").read_text()
    canonical = re.search(r'<link rel="canonical" href="([^"]+)"', page)
    assert canonical is not None, "ch01 has no <link rel=canonical>"
    assert canonical.group(1) == base + "book/ch01_unrolling.html"
