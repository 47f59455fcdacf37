"""Compare two HTML builds of the book: two builds must give the same pages.

Usage: ``python tests/compare_builds.py DIR_A DIR_B`` (two ``_build/html`` folders).

Every file but the images must be byte-identical. Figures are PNG files named by a hash of
their pixels (``_images/<sha256>.png``); a figure that plots measured times (allowed, see
CONTRIBUTING.md) differs from build to build, and so does its name in the page. Those names are
therefore replaced by ``_images/IMAGE.png`` before the pages are compared, the number of images
must agree, and the images whose content differs are listed: not an error on the pages of
``TIMING_PAGES``, which plot measured times, an error on any other page (a figure that depends
on the run).
Exit status 0 when the builds agree, 1 otherwise (the first differing lines of each page shown).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

IMAGE = re.compile(rb"_images/[0-9a-f]{64}\.(png|jpe?g|svg|gif)")
IMAGE_DIR = "_images"
# The pages allowed to differ between builds, and only in their figures: each plots times measured
# while the page is built (their cells are tagged nbval-ignore-output and print no time).
TIMING_PAGES = ("book/ch07_two_views.html", "book/ch11_truncated_bptt.html", "book/ch13_memory_online.html",
                "book/where_time_goes.html")
# Put into _build/html by `make pdf` after the HTML build, not by it (the second build is HTML only).
ADDED_AFTER_THE_BUILD = ("bptt-derived.pdf",)


def files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and str(p.relative_to(root)) not in ADDED_AFTER_THE_BUILD
    }


def compare(a: Path, b: Path) -> int:
    fa, fb = files(a), files(b)
    images_a = {k for k in fa if k.startswith(IMAGE_DIR + "/") and IMAGE.search(k.encode())}
    images_b = {k for k in fb if k.startswith(IMAGE_DIR + "/") and IMAGE.search(k.encode())}
    problems = []
    if len(images_a) != len(images_b):
        problems.append(f"{len(images_a)} hashed images in {a}, {len(images_b)} in {b}")
    others_a, others_b = set(fa) - images_a, set(fb) - images_b
    for name in sorted(others_a ^ others_b):
        problems.append(f"only in {a if name in others_a else b}: {name}")
    for name in sorted(others_a & others_b):
        da, db = fa[name].read_bytes(), fb[name].read_bytes()
        if name.endswith(".html"):
            da, db = IMAGE.sub(b"_images/IMAGE.png", da), IMAGE.sub(b"_images/IMAGE.png", db)
        if da != db:
            problems.append(f"differs: {name}")
            if name.endswith((".html", ".js", ".txt", ".css")):
                diff = difflib.unified_diff(da.decode(errors="replace").splitlines(),
                                            db.decode(errors="replace").splitlines(), lineterm="", n=0)
                problems.extend("    " + line[:200] for line in list(diff)[2:14])
    changed = images_a - images_b
    if changed:
        pages = sorted({name for name in others_a if name.endswith(".html")
                        for image in changed if Path(image).name in fa[name].read_text(errors="replace")})
        print(f"compare_builds: {len(changed)} figure(s) differ in content (expected only for figures of "
              f"measured times), on: {', '.join(pages) or '?'}")
        for image in sorted(changed):
            on = [name for name in others_a if name.endswith(".html") and Path(image).name in
                  fa[name].read_text(errors="replace")]
            if not on or any(name not in TIMING_PAGES for name in on):
                problems.append(f"figure {image} differs between the builds, on {', '.join(on) or 'no page'}, "
                                f"which is not in TIMING_PAGES")
    if any(line.startswith("differs: _sources/") for line in problems):
        print("compare_builds: the notebooks or pages themselves differ (_sources/): "
              "the sources changed between the two builds")
    for line in problems:
        print("compare_builds:", line)
    print(f"compare_builds: {len(others_a)} files compared, "
          f"{'the builds agree' if not problems else 'the builds differ'}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(compare(Path(sys.argv[1]), Path(sys.argv[2])))
