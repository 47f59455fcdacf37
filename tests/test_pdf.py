"""The PDF built by ``make pdf``: complete (every chapter, figure and solution) and nothing cut off.

Checks ``_build/latex/bptt-derived.pdf`` with poppler's ``pdftotext`` and ``pdfimages``, and the
LaTeX log of its last xelatex run. Without the PDF these tests are skipped, or fail when the
environment variable ``CI`` is set (CI builds the PDF before it runs the tests).

An overfull line is one TeX could not fit in the text width: it sticks out into the margin, and
at the page edge it is cut off. Allowed: at most ``OVERFULL_PT`` = 5 pt (less than one character
of the code font; it stays far inside the margin).
"""

import hashlib
import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LATEX = ROOT / "_build" / "latex"
PDF = LATEX / "bptt-derived.pdf"
LOG = PDF.with_suffix(".log")
TEX = PDF.with_suffix(".tex")
OVERFULL_PT = 5.0
NO_PDF = f"no {PDF.relative_to(ROOT)}: run `make pdf` first"


@pytest.fixture(scope="module", autouse=True)
def _pdf_built():
    missing = [str(p.relative_to(ROOT)) for p in (PDF, LOG, TEX) if not p.exists()]
    tools = [t for t in ("pdftotext", "pdfimages") if shutil.which(t) is None]
    if missing or tools:
        why = NO_PDF if missing else f"{', '.join(tools)} not installed (Debian: poppler-utils)"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must build the PDF with `make pdf` before the tests)")
        pytest.skip(why)


def _normal(text):
    """Letters and digits only, case-folded: robust to line breaks, hyphenation, ligatures,
    typographic quotes and the uppercase chapter openings."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


@pytest.fixture(scope="module")
def pdf_text():
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(PDF), "-"], capture_output=True,
                         text=True, check=True).stdout
    return _normal(out), out


def _toc():
    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def _chapters():
    return [c["file"] for part in _toc()["parts"] for c in part["chapters"]]


def _notebooks():
    return [ROOT / f"{f}.ipynb" for f in _chapters() if (ROOT / f"{f}.ipynb").exists()]


def _title(doc):
    path = ROOT / f"{doc}.ipynb"
    if path.exists():
        lines = (line for cell in nbformat.read(path, as_version=4).cells
                 if cell.cell_type == "markdown" for line in cell.source.splitlines())
    else:
        lines = (ROOT / f"{doc}.md").read_text().splitlines()
    return next(line[2:].strip() for line in lines if line.startswith("# "))


# --- completeness -------------------------------------------------------------------------

def test_every_part_and_chapter_title_is_in_the_pdf(pdf_text):
    text, _ = pdf_text
    titles = [part["caption"] for part in _toc()["parts"]] + [_title(f) for f in _chapters()]
    assert len(titles) > 10
    missing = [t for t in titles if _normal(t) not in text]
    assert not missing, f"titles not in the PDF's text: {missing}"


def _png_figures():
    """Distinct PNG images among the chapters' stored outputs (cells not removed from the book)."""
    found = set()
    for path in _notebooks():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or {"remove-cell", "remove-output"} & set(
                    cell.metadata.get("tags", [])):
                continue
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    found.add(hashlib.sha256(png.encode()).hexdigest())
    return found


def test_every_figure_is_embedded():
    listing = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]
    images = [row for row in listing if row.split()[2] == "image"]  # not the alpha masks
    figures = _png_figures()
    assert len(figures) >= 20  # the chapters have figures: the count below could not pass empty
    assert len(images) >= len(figures), (
        f"{len(images)} images in the PDF, {len(figures)} PNG figures in the chapters' outputs")


def _plain_words(markdown):
    """A run of at least six plain words (no math, roles, code or emphasis, which the PDF sets
    differently), or None."""
    for run in re.split(r"\$[^$]*\$|\{[^}]*\}`[^`]*`|`[^`]*`|```.*?```|[*_\[\]()]|\n\n", markdown,
                        flags=re.S):
        words = []
        for word in run.split() + ["`"]:  # the longest stretch of words free of markup
            if re.search(r"[`${}\\<>|#=:]", word):
                if len(words) >= 6:
                    return " ".join(words[:10])
                words = []
            else:
                words.append(word)
    return None


def _solutions():
    """Per chapter: the number of solutions, and text from the first one that has plain prose
    (else the first line of its code)."""
    for path in _notebooks():
        count, inside, words, code = 0, False, None, None
        for cell in nbformat.read(path, as_version=4).cells:
            source = cell.source
            if cell.cell_type == "markdown" and "{solution-start}" in source:
                count, inside = count + 1, True
                source = source.split("{solution-start}", 1)[1].split("\n", 1)[-1]
            if not inside:
                continue
            ends = cell.cell_type == "markdown" and "{solution-end}" in source
            if ends:
                source = source.split("{solution-end}", 1)[0]
            if cell.cell_type == "markdown":
                words = words or _plain_words(source)
            elif source.strip():
                code = code or source.strip().splitlines()[0]
            inside = not ends
        if count:
            yield path.stem, count, words or code


def test_every_solution_is_in_the_pdf(pdf_text):
    text, raw = pdf_text
    solutions = list(_solutions())
    assert len(solutions) >= 8
    count = sum(n for _, n, _ in solutions)
    printed = len(re.findall(r"Solution\s+to\s+Exercise", raw))
    assert printed >= count, f"{printed} solutions in the PDF, {count} in the chapters"
    missing = [(name, words) for name, _, words in solutions if words and _normal(words) not in text]
    assert not missing, f"solution text not in the PDF: {missing}"
    assert all(words for *_, words in solutions)  # the check above checked every chapter


# --- nothing cut off, no missing glyphs -----------------------------------------------------

def _log():
    return LOG.read_text(encoding="utf-8", errors="replace")


def test_no_missing_character():
    missing = sorted(set(re.findall(r"Missing character: There is no (.*)", _log())))
    assert not missing, "characters without a glyph in their font:\n" + "\n".join(missing)


def test_every_cross_reference_resolves():
    undefined = sorted(set(re.findall(r"(?:Hyper r|R)eference `([^']+)' on page", _log())))
    assert "There were undefined references" not in _log() and not undefined, (
        f"links without a target in the PDF: {undefined}")


ENVIRONMENTS = {
    "math": ("equation", "equation*", "align", "align*", "gather", "gather*", "multline",
             "multline*", "split", "aligned", "displaymath"),
    "code": ("sphinxVerbatim", "sphinxalltt", "sphinxVerbatimInput", "sphinxVerbatimOutput"),
    "table": ("longtable", "tabulary", "tabular", "tabular*"),
}


def _overfull():
    """Overfull \\hbox wider than OVERFULL_PT, one row per equation, code line or table:
    (kind, where: the nearest label before it, width in pt, its first characters)."""
    tex = TEX.read_text(encoding="utf-8").splitlines()
    kind_of = {env: kind for kind, envs in ENVIRONMENTS.items() for env in envs}
    label, stack, where = "front matter", [], []
    for line in tex:  # the nearest label and the enclosing environments of every line of the .tex
        for name in re.findall(r"\\label\{\\detokenize\{([^}]+)\}\}", line):
            doc, _, anchor = name.partition(":")
            label = f"{doc}, {anchor.lstrip(':') or 'start'}"
        envs = list(stack)  # open at the line's start, or opened on it
        for begin, env in re.findall(r"\\(begin|end)\{([^}]+)\}", line):
            if begin == "begin":
                stack.append(env)
                envs.append(env)
            elif env in stack:
                del stack[len(stack) - 1 - stack[::-1].index(env):]
        where.append((label, [kind_of[e] for e in envs if e in kind_of]))
    rows = {}
    pattern = r"Overfull \\hbox \(([\d.]+)pt too wide\) (?:detected at line|in \w+ at lines) (\d+)"
    for width, line in re.findall(pattern, _log()):
        n = int(line) - 1
        label, kinds = where[n]
        kind = kinds[0] if kinds else "text"
        if kind == "math":  # the formula, from its \begin{equation...} on
            n = max(i for i in range(n + 1) if re.search(r"\\begin\{(equation|align|gather)", tex[i]))
            snippet = " ".join(tex[n + 1:n + 3])
        elif kind == "table":
            n = max(i for i in range(n + 1) if re.search(r"\\begin\{(longtable|tabul)", tex[i]))
            snippet = "table: " + " | ".join(t for t in tex[n + 1:n + 20] if t and "\\" not in t)
        else:
            snippet = tex[n]
        snippet = re.sub(r"\\(begin|end)\{(split|aligned)\}|\s+", " ", snippet).strip()[:60]
        if float(width) > max(OVERFULL_PT, rows.get(n, ("", "", 0))[2]):
            rows[n] = (kind, label, float(width), snippet)
    return list(rows.values())


def _report(rows):
    return "\n".join(f"  {label} ({kind}), {width:.0f} pt too wide: {snippet}"
                     for kind, label, width, snippet in rows)


def test_no_equation_or_code_line_sticks_out():
    rows = [row for row in _overfull() if row[0] in ("math", "code")]
    assert not rows, (f"{len(rows)} display equations or code lines wider than the text by more "
                      f"than {OVERFULL_PT} pt (break them):\n" + _report(rows))


def test_no_table_or_text_line_sticks_out():
    rows = [row for row in _overfull() if row[0] not in ("math", "code")]
    assert not rows, (f"{len(rows)} tables or lines wider than the text by more than "
                      f"{OVERFULL_PT} pt:\n" + _report(rows))
