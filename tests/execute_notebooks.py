"""Execute notebooks in place, the way the book build and nbval run them.

Used by ``make execute`` after editing a chapter, so that the stored outputs
that nbval compares are fresh. Prints each notebook's execution time.

What is stored does not depend on timing: each run of printed chunks is merged
exactly into one output per stream (``_ext/stream_merge.py``, as the HTML build
does), and no execution timestamps are recorded in the cells' metadata.

``--merge-only`` merges the stored outputs of already executed notebooks without
running them (outputs are otherwise unchanged).
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
from stream_merge import merge_streams  # noqa: E402


def merge_stored_streams(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
            cell.metadata.pop("execution", None)


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, startup_timeout=300, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    merge_stored_streams(nb)
    nbformat.write(nb, path)
    return elapsed


def merge_only(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    merge_stored_streams(nb)
    nbformat.write(nb, path)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--merge-only":
        for arg in args[1:]:
            merge_only(Path(arg))
            print(f"{arg}: stream outputs merged", flush=True)
    else:
        for arg in args:
            print(f"{arg}: {execute(Path(arg)):.1f} s", flush=True)
