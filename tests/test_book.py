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
    # "Build and test": one block for the Debian packages (once per machine), one with the two
    # commands that build and test; .ci/run runs exactly these, in this order.
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"## Build and test\n(.*?)\n## ", readme, re.S).group(1)
    blocks = [[line.strip() for line in b.splitlines() if line.strip()]
              for b in re.findall(r"```bash\n(.*?)```", section, re.S)]
    assert blocks[0] == [".ci/install-system-packages"]
    assert blocks[1] == ["make book", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [line.strip() for line in ci.splitlines()
                   if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci_commands == blocks[0] + blocks[1]


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


# --- Reproducible output: printed chunks merged exactly (see _ext/stream_merge.py) -------------

def _stream_merge():
    import importlib.util

    spec = importlib.util.spec_from_file_location("stream_merge", ROOT / "_ext" / "stream_merge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stream(name, text):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_merge_streams_joins_chunks_exactly_wherever_the_flush_fell():
    merge = _stream_merge().merge_streams
    line = "the first line\n\nthe second line, after a blank one\n"
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    for cut in range(1, len(line)):
        merged = merge([_stream("stdout", line[:cut]), _stream("stdout", line[cut:]), figure,
                        _stream("stderr", "warned\n"), _stream("stdout", "after\n")])
        assert [o.output_type for o in merged] == ["stream", "display_data", "stream", "stream"]
        assert merged[0].text == line, cut
        assert [(o.name, o.text) for o in merged[2:]] == [("stdout", "after\n"), ("stderr", "warned\n")]


def test_the_build_merges_streams_with_stream_merge():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert config["local_extensions"]["stream_merge"] == "_ext/"
    assert config["config"]["nb_merge_streams"] is True
    from myst_nb.core import render

    original = render.coalesce_streams
    module = _stream_merge()
    try:
        module.setup(app=None)
        assert render.coalesce_streams is module.merge_streams
    finally:
        render.coalesce_streams = original


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_do_not_depend_on_flush_timing(path):
    """One stream output per name between two displays (tests/execute_notebooks.py merges them)."""
    merge = _stream_merge().merge_streams
    nb = nbformat.read(path, as_version=4)
    split = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and len(merge([nbformat.from_dict(o) for o in cell.outputs])) != len(cell.outputs)]
    assert not split, (f"cells {split} store printed output in several chunks: "
                       f"python tests/execute_notebooks.py --merge-only {path.relative_to(ROOT)}")
    assert not [i for i, cell in enumerate(nb.cells) if "execution" in cell.metadata], \
        "execution timestamps stored: re-run tests/execute_notebooks.py"


# --- Word budget: Parts I-II at most 16,500 words of prose -------------------------------------

WORD_BUDGET_PARTS_I_II = 16_500


def prose_words(path: Path) -> int:
    """Words of prose in a notebook's markdown cells, display math excluded."""
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"```\{math\}.*?```", "", text, flags=re.S)
    # A role shows its title, not its markup or target: {py:func}`title <bptt_lib.x>` -> title.
    text = re.sub(r"\{[a-z:]+\}`([^`<]*?)\s*<[^`]*>`", r"\1", text)
    text = re.sub(r"\{[a-z:]+\}`([^`]*)`", r"\1", text)
    return len(re.findall(r"[A-Za-z][A-Za-z'\-]*", text))


def test_prose_words_counts_words_not_math_or_code(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# The title\n\nIt's a well-known rule:\n$$ a = b + W h $$\nand $x$ counts."),
        nbformat.v4.new_markdown_cell("{py:func}`two words <bptt_lib.rnn.loss_and_grads>` {index}`one`"),
        nbformat.v4.new_code_cell("print('code is not prose')")])
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    assert prose_words(path) == 12  # The title It's a well-known rule and x counts; two words one


def test_parts_one_and_two_stay_within_the_word_budget():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = [p for p in toc["parts"] if p["caption"].startswith(("Part I:", "Part II:"))]
    assert len(parts) == 2
    files = [ROOT / f"{c['file']}.ipynb" for p in parts for c in p["chapters"]]
    words = {f.stem: prose_words(f) for f in files}
    total = sum(words.values())
    assert total <= WORD_BUDGET_PARTS_I_II, f"Parts I-II hold {total} words of prose: {words}"


# --- Portability: nbval again under other BLAS kernels and a one-ulp libm ----------------------

def test_make_test_runs_the_portability_conditions():
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = re.search(r"^test:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "portability" in test_recipe
    recipe = re.search(r"^portability:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "tests/portability/run.py" in recipe and "$(NBVAL) book" in recipe
    assert "--nbval-kernel-startup-timeout" in makefile
