"""Every notebook opens with the install cell, and the cell works where bptt_lib is missing.

The cell's text comes from ``bptt_lib/launch_cell.py`` (``python -m bptt_lib.launch_cell --write``).
The last test runs it as a reader on Colab would, in a fresh virtual environment without
``bptt_lib``, installing from a copy of this checkout (no network), then runs every chapter's
imports there.
"""

import ast
import importlib.metadata
import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest
import yaml

from bptt_lib import __version__
from bptt_lib.launch_cell import (
    CELL_ID,
    ENV_VAR,
    TAG,
    cell_source,
    cell_source_for,
    default_source,
    main,
    sync_book,
    sync_notebook,
)
from bptt_lib.student_edition import student_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CELL = cell_source_for(ROOT)


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_generated_install_cell(path):
    first = _code_cells(path)[0]
    assert first.source == CELL, f"run: python -m bptt_lib.launch_cell --write  ({path.name})"
    assert first.metadata.get("tags") == [TAG], "hidden in the HTML, kept in the .ipynb"
    assert first.outputs == [], "where bptt_lib is importable the cell prints nothing"


def test_the_cell_installs_the_release_of_the_configured_repository():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f'"{ENV_VAR}", "git+{url.rstrip("/")}@v{__version__}"' in CELL
    lines = CELL.splitlines()
    # Short enough to read at a glance; one import a line, as ruff (make lint) wants.
    assert len(lines) <= 12 and lines[0].startswith("#") and lines[1].startswith("#")
    compile(CELL, "<install cell>", "exec")


def test_a_fork_regenerates_every_cell_with_one_command(tmp_path):
    """Another repository.url: --check names every notebook, --write fixes them, --check passes."""
    (tmp_path / "book").mkdir()
    for path in NOTEBOOKS[:2]:
        (tmp_path / "book" / path.name).write_bytes(path.read_bytes())
    config = (ROOT / "_config.yml").read_text()
    url = yaml.safe_load(config)["repository"]["url"]
    (tmp_path / "_config.yml").write_text(config.replace(url, "https://github.com/a-fork/bptt"))
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert main(["--write", "--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    for path in NOTEBOOKS[:2]:
        before, after = nbformat.read(path, as_version=4), nbformat.read(tmp_path / "book" / path.name, as_version=4)
        assert [c.id for c in after.cells] == [c.id for c in before.cells]
        changed = [i for i, (a, b) in enumerate(zip(before.cells, after.cells)) if a != b]
        assert len(changed) == 1 and "git+https://github.com/a-fork/bptt@v" in after.cells[changed[0]].source


def test_sync_inserts_the_cell_before_the_first_code_cell_once():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("import numpy")]
    source = cell_source("https://example.org/repo", "9.9.9")
    assert sync_notebook(nb, source) is True
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert nb.cells[1].id == CELL_ID and nb.cells[1].source == source and nb.cells[2].source == "import numpy"
    assert sync_notebook(nb, source) is False
    assert sync_notebook(nb, cell_source("https://example.org/other", "9.9.9")) is True
    assert len(nb.cells) == 3 and "example.org/other@v9.9.9" in nb.cells[1].source
    nbformat.validate(nb)


def test_default_source_rejects_a_non_url():
    with pytest.raises(ValueError, match="http"):
        default_source("git@github.com:me/book.git", "1.0.0")


def test_the_book_is_in_sync():
    assert sync_book(ROOT / "book", CELL, write=False) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_edition_keeps_the_install_cell(path):
    nb = student_notebook(nbformat.read(path, as_version=4))
    assert [c for c in nb.cells if c.cell_type == "code"][0].source == CELL


# --- The cell in a fresh environment ------------------------------------------------------------

def _imports(source):
    """The top-level import statements of a code cell, as source."""
    return [ast.get_source_segment(source, node) for node in ast.parse(source).body
            if isinstance(node, (ast.Import, ast.ImportFrom))]


# Run by the fresh environment's Python. argv: the install cell, then a JSON list of
# [notebook, import cell, other imports]. Prints a JSON report on its last line.
_FIRST_RUN = """
import importlib.util, json, sys
cell, chapters = sys.argv[1], json.loads(sys.argv[2])
assert importlib.util.find_spec("bptt_lib") is None, "bptt_lib is importable before the install"
exec(cell, {})
import bptt_lib
report = {"file": bptt_lib.__file__, "version": bptt_lib.__version__, "ran": []}
for name, import_cell, imports in chapters:
    exec(import_cell, {})
    exec(imports, {})
    report["ran"].append(name)
print(json.dumps(report))
"""

_SECOND_RUN = """
import subprocess, sys
calls = []
subprocess.run = lambda *args, **kwargs: calls.append(args)
exec(sys.argv[1], {})
assert not calls, calls
"""


def test_the_cell_installs_bptt_lib_in_a_fresh_environment_then_does_nothing(tmp_path):
    # Offline, pip builds bptt_lib with the setuptools of .venv; pyproject.toml's SPDX licence
    # string needs setuptools 77 or newer (requirements.txt pins it).
    setuptools = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    assert setuptools >= (77, 0), "setuptools >= 77 is needed in .venv: see requirements.txt"
    # A fresh venv that sees .venv's pinned packages but not bptt_lib: a .pth line adds .venv's
    # site-packages to sys.path, and the .pth files in it (bptt_lib's editable finder) are not run.
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "main_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # The checkout's files as git sees them (tracked and new, not ignored), copied: pip builds in
    # the source tree, and must not write into the real checkout.
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    source = tmp_path / "source"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())

    workdir = tmp_path / "work"  # not the checkout: a bptt_lib/ folder in the cwd would be importable
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update({
        ENV_VAR: str(source), "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg",
        # Offline, from the copy alone: no index, no dependencies (the pinned ones are visible),
        # no build isolation (setuptools comes from .venv). pip reads PIP_NO_BUILD_ISOLATION
        # inverted: "0" turns build isolation off.
        "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1", "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
    })

    chapters = []
    for path in NOTEBOOKS:
        code = _code_cells(path)
        assert code[0].source == CELL
        others = "\n".join(line for cell in code[2:] for line in _imports(cell.source))
        chapters.append([path.name, code[1].source, others])
    first = subprocess.run([python, "-c", _FIRST_RUN, CELL, json.dumps(chapters)], cwd=workdir, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = json.loads(first.stdout.strip().splitlines()[-1])
    installed = Path(report["file"]).resolve()
    assert installed.is_relative_to(env_dir.resolve()), f"bptt_lib imported from {installed}, not the fresh env"
    assert report["version"] == __version__
    assert report["ran"] == [p.name for p in NOTEBOOKS]

    # Run again where bptt_lib is installed: pip is not called and nothing is printed.
    second = subprocess.run([python, "-c", _SECOND_RUN, CELL], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout == "" and second.stderr == ""
