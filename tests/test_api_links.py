"""Every ``{py:...}`` link in the book points at a name that exists and that book/api.md documents.

The HTML build is nitpicky (``-W -n``): a link to a misspelt or undocumented name fails it, but
only after minutes. This test finds the same mistakes in seconds. A target is documented when its
module is ``automodule``'d with ``:members:`` in book/api.md and autodoc lists it there: it is in
the module's ``__all__`` (or, without one, defined in the module), it is public, and it has a
docstring (a function or class) or a ``#:`` doc-comment (a module-level constant).
"""

import importlib
import inspect
import re
from pathlib import Path

import nbformat
import pytest
from sphinx.pycode import ModuleAnalyzer

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
API = (BOOK / "api.md").read_text(encoding="utf-8")
ROLE = re.compile(r"\{py:(\w+)\}`([^`]+)`")
AUTOMODULE = re.compile(r"^\.\. automodule:: (\S+)[ \t]*\n((?:[ \t]+:[\w-]+:.*\n)*)", re.M)
DOCUMENTED_MODULES = {name: ":members:" in options for name, options in AUTOMODULE.findall(API + "\n")}


def _sources():
    for path in sorted(BOOK.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        yield path.name, "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for path in sorted(BOOK.glob("*.md")):
        yield path.name, path.read_text(encoding="utf-8")


def _links():
    links = []
    for name, text in _sources():
        for role, body in ROLE.findall(text):
            explicit = re.fullmatch(r"(.*?)\s*<([^<>]+)>", body, re.S)
            target = (explicit.group(2) if explicit else body).strip().lstrip("~")
            links.append((name, role, target))
    return links


LINKS = _links()


def _resolve(target):
    """(module name, attribute path, object) for a dotted name, by import; None if it does not exist."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ImportError:
            continue
        for part in parts[i:]:
            if not hasattr(obj, part):
                return None
            obj = getattr(obj, part)
        return module, parts[i:], obj
    return None


def _why_undocumented(module, rest, obj):
    """None if autodoc documents the object in book/api.md, else the reason it does not."""
    if module not in DOCUMENTED_MODULES:
        return f"book/api.md has no '.. automodule:: {module}'"
    if not rest:
        return None
    if not DOCUMENTED_MODULES[module]:
        return f"'.. automodule:: {module}' in book/api.md has no :members:"
    if len(rest) > 1:
        return None if _resolve(f"{module}.{rest[0]}") and getattr(obj, "__doc__", None) else "no docstring"
    name = rest[0]
    public = getattr(importlib.import_module(module), "__all__", None)
    if name.startswith("_"):
        return "a private name"
    if public is not None and name not in public:
        return f"not in {module}.__all__"
    if inspect.isfunction(obj) or inspect.isclass(obj):
        if public is None and obj.__module__ != module:
            return f"imported from {obj.__module__}, documented there"
        return None if obj.__doc__ else "no docstring"
    if ("", name) not in ModuleAnalyzer.for_module(module).find_attr_docs():
        return "a constant without a '#:' doc-comment"
    return None


def test_the_book_links_into_the_api_reference():
    chapters = {name for name, _, _ in LINKS if name.startswith("ch")}
    assert len(chapters) == len(list(BOOK.glob("ch*.ipynb"))), "every chapter links to the library it uses"


@pytest.mark.parametrize("page, role, target", LINKS, ids=[f"{p}:{t}" for p, _, t in LINKS])
def test_link_target_exists_and_is_documented(page, role, target):
    found = _resolve(target)
    assert found is not None, f"{page}: {{py:{role}}} target {target!r} does not exist in bptt_lib"
    module, rest, obj = found
    assert target.startswith("bptt_lib"), f"{page}: write the full name, bptt_lib.…, not {target!r}"
    why = _why_undocumented(module, rest, obj)
    assert why is None, f"{page}: {target!r} is not in the API reference: {why}"
    expected = ("mod",) if not rest else ("class", "exc", "obj") if inspect.isclass(obj) else \
        ("func", "meth", "obj") if callable(obj) else ("data", "attr", "const", "obj")
    assert role in expected, f"{page}: {target!r} is linked with {{py:{role}}}; use {{py:{expected[0]}}}"


def test_the_checker_catches_a_typo_and_an_undocumented_name():
    assert _resolve("bptt_lib.rnn.loss_and_grad") is None
    assert "has no :members:" in _why_undocumented(*_resolve("bptt_lib.__version__"))
    assert _why_undocumented(*_resolve("bptt_lib.rnn.np")) is not None  # numpy, imported by rnn
    assert "automodule" in _why_undocumented("bptt_lib.launch_cells", [], None)
    assert _why_undocumented(*_resolve("bptt_lib.rnn.loss_and_grads")) is None
