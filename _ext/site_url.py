"""Derive the published site's address from the repository URL.

The repository URL is written once, in ``_config.yml`` (``repository.url``). Jupyter Book
derives the launch buttons and the repository button from it; this extension derives
``html_baseurl`` (the canonical address of every page) the way GitHub Pages publishes a
project: ``https://github.com/OWNER/REPO`` is served at ``https://OWNER.github.io/REPO/``.
An explicit ``html.baseurl`` in ``_config.yml`` still wins (a custom domain).
"""

import re

_GITHUB = re.compile(r"^https://github\.com/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/?$")


def pages_url(repository_url: str) -> str:
    """``https://github.com/OWNER/REPO`` -> ``https://OWNER.github.io/REPO/``."""
    match = _GITHUB.match(repository_url)
    if match is None:
        raise ValueError(
            f"repository.url in _config.yml: expected https://github.com/OWNER/REPO, got {repository_url!r}"
        )
    return f"https://{match['owner'].lower()}.github.io/{match['repo']}/"


def _set_baseurl(app, config):
    if not config.html_baseurl:
        config.html_baseurl = pages_url(config.html_theme_options["repository_url"])


def setup(app):
    app.connect("config-inited", _set_baseurl)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
