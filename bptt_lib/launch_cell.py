"""The install cell that opens every notebook of the book.

On Colab, on Binder or in a downloaded notebook, ``bptt_lib`` may not be installed; each
notebook's first code cell installs it there and does nothing (prints nothing) where it is
importable. It installs from the book's release tag, ``git+<repository.url>@v<version>``, with
``repository.url`` from ``_config.yml`` and the version from ``bptt_lib.__version__``; the
environment variable ``BPTT_LIB_SOURCE`` (any pip requirement or a local path) overrides that.
The cell is tagged ``remove-cell``: absent from the HTML, present in the ``.ipynb``.

The cell's text is generated here, so that a fork that changes ``repository.url`` (or a new
release) updates every notebook with one command, run from the repository's root::

    python -m bptt_lib.launch_cell --write    # rewrite (or insert) the cell in book/*.ipynb
    python -m bptt_lib.launch_cell --check    # exit 1 naming the notebooks out of sync

``tests/test_launch_cell.py`` checks that every notebook's first code cell is this text, and runs
it in a fresh virtual environment without ``bptt_lib``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["ENV_VAR", "TAG", "CELL_ID", "default_source", "cell_source", "cell_source_for",
           "sync_notebook", "sync_book"]

ENV_VAR = "BPTT_LIB_SOURCE"
"""The environment variable that overrides where the cell installs ``bptt_lib`` from."""

TAG = "remove-cell"
"""The cell's tag: Jupyter Book leaves the cell out of the HTML page."""

CELL_ID = "install-bptt-lib"
"""The id of the cell when it is inserted into a notebook."""

_FIRST_LINE = "# Where bptt_lib, the library this book builds, is missing (on Colab, say)"

_TEMPLATE = f"""\
{_FIRST_LINE}, install it from
# the book's release tag, or from {ENV_VAR} if set (a pip requirement or a local path).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("bptt_lib") is None:
    source = os.environ.get("{ENV_VAR}", "{{source}}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", source], check=True)
    importlib.invalidate_caches()  # so that this running kernel finds the new package"""


def default_source(url: str, version: str) -> str:
    """The pip requirement of the release: ``git+<url>@v<version>``.

    >>> default_source("https://github.com/me/book/", "1.2.0")
    'git+https://github.com/me/book@v1.2.0'
    """
    url = url.strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"repository.url must be an http(s) URL; got {url!r}")
    return f"git+{url}@v{version}"


def cell_source(url: str, version: str) -> str:
    """The install cell's text for the repository ``url`` and the release ``version``."""
    return _TEMPLATE.replace("{source}", default_source(url, version))


def cell_source_for(root: Path | str = ".") -> str:
    """The install cell's text for the checkout at ``root``: ``repository.url`` from its
    ``_config.yml``, the version from ``bptt_lib.__version__``."""
    import yaml

    from . import __version__

    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf-8"))
    try:
        url = config["repository"]["url"]
    except (KeyError, TypeError):
        raise ValueError(f"{Path(root) / '_config.yml'} has no repository.url") from None
    return cell_source(url, __version__)


def _is_install_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(_FIRST_LINE)


def sync_notebook(nb, source: str) -> bool:
    """Make ``source`` the first code cell of ``nb`` (in place); True if ``nb`` changed.

    An existing install cell (recognised by its first line) gets the new text and its tag; a
    notebook without one gets a new cell before its first code cell. Other cells, their ids and
    outputs are untouched.
    """
    import nbformat

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    if code and _is_install_cell(nb.cells[code[0]]):
        cell = nb.cells[code[0]]
        tags = cell.metadata.get("tags", [])
        if cell.source == source and tags == [TAG]:
            return False
        cell.source = source
        cell.metadata["tags"] = [TAG]
        return True
    if any(_is_install_cell(cell) for cell in nb.cells):
        raise ValueError("the install cell is not the notebook's first code cell")
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [TAG]})
    cell.id = CELL_ID
    nb.cells.insert(code[0] if code else len(nb.cells), cell)
    return True


def sync_book(book: Path | str, source: str, write: bool) -> list[Path]:
    """The notebooks under ``book`` whose install cell differs from ``source``; rewritten if
    ``write``."""
    import nbformat

    changed = []
    for path in sorted(Path(book).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if sync_notebook(nb, source):
            changed.append(path)
            if write:
                nbformat.write(nb, path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the install cell of every notebook")
    mode.add_argument("--check", action="store_true", help="exit 1 if a notebook's install cell is out of sync")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository's root (default: .)")
    args = parser.parse_args(argv)
    changed = sync_book(args.root / "book", cell_source_for(args.root), write=args.write)
    for path in changed:
        print(f"{path}: {'install cell written' if args.write else 'install cell out of sync'}")
    if args.check and changed:
        print("run: python -m bptt_lib.launch_cell --write (then re-execute those notebooks)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
