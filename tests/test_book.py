"""Invariants of the book's sources: the table of contents, the CI script, the notebooks."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


def test_every_notebook_is_in_the_toc():
    listed = set(_toc_files())
    missing = [nb.name for nb in NOTEBOOKS if str(nb.relative_to(ROOT).with_suffix("")) not in listed]
    assert not missing, f"notebooks missing from _toc.yml: {missing}"


def test_every_toc_entry_exists_once():
    files = _toc_files()
    assert len(files) == len(set(files))
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".ipynb", ".md")), f


def test_no_jupytext_twins_in_book():
    for nb in NOTEBOOKS:
        assert not nb.with_suffix(".md").exists(), f"{nb.name} has a .md twin: Sphinx would see two documents"


def test_ci_runs_the_readme_commands_exactly():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Build and test\n.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci_commands == commands


def test_mathjax_is_local():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]["config"]
    assert "://" not in sphinx["mathjax_path"]
    assert sphinx["html_extra_path"] == ["_mathjax"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count is not None for c in code), "execute the notebook: make execute"
    text = "\n".join(c.source for c in nb.cells)
    assert not re.search(r"init_printing\((?![^)]*mathjax)", text)
    assert "{exercise}" in text or path.stem in ("claims_checked",)
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", cell.source[:80]
            assert "ipykernel_" not in str(out.get("text", "")), cell.source[:80]


CDN = re.compile(r"cdn\.|cdnjs|jsdelivr|unpkg|googleapis|<script[^>]+src=\"https?://")


def test_built_html_loads_nothing_from_a_cdn():
    """After `make book` (CI builds first): no page refers to a CDN, and MathJax is local."""
    html = ROOT / "_build" / "html"
    if not html.exists():
        pytest.skip("the book has not been built (run make book first)")
    pages = [p for p in html.rglob("*.html") if "mathjax" not in p.parts]
    assert pages
    offenders = [str(p.relative_to(html)) for p in pages if CDN.search(p.read_text(errors="replace"))]
    assert not offenders, offenders
    assert (html / "mathjax" / "tex-chtml.js").exists()
    chapter = (html / "book" / "ch01_unrolling.html").read_text()
    assert 'src="../_static/../mathjax/tex-chtml.js' in chapter
    assert "mybinder.org" in chapter and "colab.research.google.com" in chapter
