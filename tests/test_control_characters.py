r"""No escape sequence turned into a control character where LaTeX was meant.

In a non-raw Python string, or a JSON string written by hand, ``\approx`` starts with the
bell character and ``\times`` with a tab: the math then renders wrong and xelatex stops on
"Text line contains an invalid character". Both mistakes have happened once.
"""

import importlib
import inspect
import pathlib
import pkgutil
import re

import nbformat
import pytest

import bptt_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
MARKDOWN_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f]")
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_sources_hold_no_control_characters(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        # a tab is legal in code, never meant in prose (it is what "\t" of "\times" becomes)
        pattern = CONTROL if cell.cell_type == "code" else MARKDOWN_CONTROL
        bad = pattern.search(cell.source)
        near = cell.source[max(0, bad.start() - 20):bad.start() + 20] if bad else ""
        assert not bad, f"{path.name}, cell {index}: control character {bad.group()!r} near {near!r}"
        for key in ("caption", "alt"):
            for value in _find(cell.metadata, key):
                hit = MARKDOWN_CONTROL.search(value)
                assert not hit, f"{path.name}, cell {index}: control character in the {key}: {value!r}"


def _find(meta, key):
    if isinstance(meta, dict):
        for k, v in meta.items():
            if k == key and isinstance(v, str):
                yield v
            yield from _find(v, key)
    elif isinstance(meta, list):
        for v in meta:
            yield from _find(v, key)


def _documented():
    for info in pkgutil.walk_packages(bptt_lib.__path__, "bptt_lib."):
        module = importlib.import_module(info.name)
        yield info.name, module
        for name, obj in inspect.getmembers(module):
            if getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{info.name}.{name}", obj
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        if inspect.isfunction(member):
                            yield f"{info.name}.{name}.{attr}", member


def test_docstrings_hold_no_control_characters():
    bad = [name for name, obj in _documented()
           if MARKDOWN_CONTROL.search(obj.__doc__ or "")]
    assert not bad, f"docstrings with a control character (make them raw strings, r\"\"\"...): {bad}"
