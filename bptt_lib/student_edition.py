"""Make the student edition of the book's notebooks.

Usage::

    python -m bptt_lib.student_edition            # book/ -> student/
    python -m bptt_lib.student_edition --out DIR

For every notebook in the book:

- text between the ``solution-start`` and ``solution-end`` markers is
  removed (the solution's explanation, the dropdown markers);
- each code cell tagged ``solution`` becomes a stub: every function it defines
  keeps its signature and docstring, and its body raises ``NotImplementedError``,
  which the exercise checkers report as "not implemented yet"; a solution cell
  that defines no function becomes a comment inviting the student's code;
- all outputs are cleared, so the student runs each cell.

The stubbed notebooks still run top to bottom: no cell raises until a stub
function is called, and the checkers catch that.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["stub_source", "student_notebook", "make_student_edition"]

SOLUTION_TAG = "solution"
_START = re.compile(r"^(`{3,}|:{3,})\{solution-start\}", re.M)
_END = re.compile(r"^(`{3,}|:{3,})\{solution-end\}\s*\n\1\s*$", re.M)
_REGION = re.compile(
    r"^(`{3,}|:{3,})\{solution-start\}.*?^(`{3,}|:{3,})\{solution-end\}\s*\n\2[ \t]*$\n?", re.M | re.S
)


def stub_source(source: str, exercise: str = "this exercise") -> str:
    """The stub that replaces a solution cell's source.

    >>> print(stub_source('def f(x):\\n    "Double x."\\n    return 2 * x\\n'))
    def f(x):
        "Double x."
        raise NotImplementedError("Write f: see the exercise above.")
    <BLANKLINE>
    """
    tree = ast.parse(source)
    stubs = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            doc = ast.get_docstring(node, clean=False)
            body = []
            if doc is not None:
                body.append(node.body[0])
            message = f"Write {node.name}: see the exercise above."
            body.append(ast.parse(f"raise NotImplementedError({message!r})").body[0])
            stub = ast.FunctionDef(
                name=node.name, args=node.args, body=body, decorator_list=[], returns=node.returns,
                type_params=[],
            )
            stubs.append(ast.unparse(ast.fix_missing_locations(stub)))
    if not stubs:
        return f"# Your code for {exercise} goes here.\n"
    return "\n\n\n".join(stubs) + "\n"


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with solutions removed or stubbed and outputs cleared."""
    out = copy.deepcopy(nb)
    cells = []
    in_solution = False
    for cell in out.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown":
            text = _REGION.sub("", cell.source)
            if in_solution:
                end = _END.search(text)
                if not end:
                    continue
                text = text[end.end():]
                in_solution = False
            start = _START.search(text)
            if start:
                text = text[: start.start()]
                in_solution = True
            if "{solution" in text:
                raise ValueError(f"unbalanced solution markers in a markdown cell: {cell.source[:80]!r}")
            cell.source = text.rstrip() + "\n" if text.strip() else ""
            if cell.source:
                cells.append(cell)
            continue
        if cell.cell_type == "code":
            if SOLUTION_TAG in tags:
                cell.source = stub_source(cell.source)
                cell.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG]
            elif in_solution:
                raise ValueError(
                    "a code cell inside a solution is not tagged 'solution': "
                    f"{cell.source[:80]!r}"
                )
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    if in_solution:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    out.cells = cells
    return out


def make_student_edition(book: Path, out: Path, only=None) -> list[Path]:
    """Write the student edition of every notebook under ``book`` into ``out``.

    ``only``, if given, is a collection of file names to restrict the run to.
    """
    book, out = Path(book), Path(out)
    if out.resolve() == book.resolve() or book.resolve() in out.resolve().parents:
        raise ValueError(f"out must be outside the book folder {book}; got {out}")
    written = []
    for path in sorted(book.rglob("*.ipynb")):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        if only is not None and path.name not in only:
            continue
        nb = nbformat.read(path, as_version=4)
        target = out / path.relative_to(book)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=Path("book"), help="folder of the book's notebooks")
    parser.add_argument("--out", type=Path, default=Path("student"), help="where to write the student edition")
    args = parser.parse_args(argv)
    for path in make_student_edition(args.book, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
