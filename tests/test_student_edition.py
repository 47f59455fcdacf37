"""The student edition strips solutions, stubs them, and still runs top to bottom."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bptt_lib.student_edition import make_student_edition, stub_source, student_notebook

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHECK_CALL = re.compile(r'^check\("(\w+)",', re.M)


def test_stub_keeps_signature_and_docstring_and_raises():
    src = stub_source('import numpy as np\n\ndef f(x, *, y=2):\n    """Twice x."""\n    return 2 * x\n\nprint(f(1))\n')
    namespace = {}
    exec(src, namespace)
    assert namespace["f"].__doc__ == "Twice x."
    with pytest.raises(NotImplementedError, match="Write f"):
        namespace["f"](1)
    assert "print" not in src and "return 2 * x" not in src


def test_solution_without_a_function_becomes_a_comment():
    assert stub_source("x = 1 + 1\n").startswith("# Your code")


def _toy_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("```{exercise} Double\n:label: ex-toy\n\nWrite `f`.\n```"),
        nbformat.v4.new_markdown_cell("```{solution-start} ex-toy\n:class: dropdown\n```\nExplanation."),
        nbformat.v4.new_code_cell("def f(x):\n    return 2 * x", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("More explanation.\n```{solution-end}\n```\nAfter the solution."),
        nbformat.v4.new_code_cell("f(2)", outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "4"})]),
        nbformat.v4.new_markdown_cell("```{solution-start} ex-toy2\n```\nText only.\n```{solution-end}\n```\nKept."),
    ]
    return nb


def test_toy_notebook_is_transformed():
    out = student_notebook(_toy_notebook())
    text = json.dumps(out)
    assert "solution-start" not in text and "solution-end" not in text
    assert "Explanation" not in text and "More explanation" not in text and "Text only" not in text
    assert "After the solution." in text and "Kept." in text and "Write `f`." in text
    assert "raise NotImplementedError" in text and "return 2 * x" not in text
    assert all(c.get("outputs", []) == [] for c in out.cells if c.cell_type == "code")


def test_untagged_code_inside_a_solution_is_an_error():
    nb = _toy_notebook()
    nb.cells[2].metadata["tags"] = []
    with pytest.raises(ValueError, match="not tagged 'solution'"):
        student_notebook(nb)


def test_out_folder_must_be_outside_the_book(tmp_path):
    with pytest.raises(ValueError, match="outside the book folder"):
        make_student_edition(BOOK, BOOK / "student")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_book_solutions_pass_their_checkers(path):
    """Stored outputs of every check cell say the solution passed (nbval re-runs them strictly)."""
    nb = nbformat.read(path, as_version=4)
    checks = [c for c in nb.cells if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for name in CHECK_CALL.findall(cell.source):
            assert f"✓ {name}: all " in text, (path.name, name, text)


def _has_checkers(path):
    return any(CHECK_CALL.search(c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _has_checkers(p)], ids=lambda p: p.name)
def test_student_notebook_runs_and_checkers_reject_the_stubs(path, tmp_path):
    (student,) = make_student_edition(path.parent, tmp_path / "student", only=[path.name])
    nb = nbformat.read(student, as_version=4)
    text = json.dumps(nb.cells)
    assert "solution-start" not in text and '"solution"' not in text
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    assert checks, "a chapter with exercises has at least one checker cell"
    for cell in checks:
        out = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for name in CHECK_CALL.findall(cell.source):
            assert f"… {name}: not implemented yet" in out, (name, out)
