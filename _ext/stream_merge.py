"""Merge a cell's printed output exactly, so that two builds give the same HTML.

A kernel sends what a cell prints in chunks, cut wherever its flush timer (0.2 s) happens to
fire, which can be in the middle of a line (``print`` writes the text and the newline
separately). MyST-NB 1.4.0's ``nb_merge_streams`` joins those chunks but strips each one's
trailing whitespace and adds a newline (``myst_nb.core.utils.coalesce_streams``), so a line
cut by the timer is printed as two lines, at a place that changes from build to build.

:func:`merge_streams` joins chunks exactly instead. It merges each run of consecutive stream
outputs (the kernel flushes stdout and stderr before it publishes a figure or other display,
so where a run ends does not depend on timing), stdout before stderr within a run (their
relative order is asynchronous), and keeps figures where the cell showed them. The same
function merges the outputs that ``tests/execute_notebooks.py`` stores.
"""

from __future__ import annotations

import re

# A line overwritten by a carriage return shows only what follows the \r (as in nbval and
# MyST-NB; applying it twice changes nothing, so stored outputs compare equal under nbval).
_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
_ORDER = {"stdout": 0, "stderr": 1}


def merge_streams(outputs: list) -> list:
    """Outputs with each run of consecutive stream chunks merged exactly, one per stream name.

    The output objects are modified in place (their ``text``) and returned in a new list; an
    output of any other type is kept as it is, in its place.
    """
    merged, run = [], {}
    for output in outputs or []:
        if output["output_type"] != "stream":
            merged.extend(sorted(run.values(), key=lambda o: _ORDER.get(o["name"], 2)))
            run = {}
            merged.append(output)
        elif output["name"] in run:
            run[output["name"]]["text"] += output["text"]
        else:
            run[output["name"]] = output
    merged.extend(sorted(run.values(), key=lambda o: _ORDER.get(o["name"], 2)))
    for output in merged:
        if output["output_type"] == "stream":
            output["text"] = _CARRIAGE_RETURN.sub("", output["text"])
    return merged


def setup(app):
    # MyST-NB looks coalesce_streams up in its render module each time it renders a cell.
    from myst_nb.core import render

    if not callable(getattr(render, "coalesce_streams", None)):
        raise RuntimeError("myst_nb.core.render.coalesce_streams is gone: update _ext/stream_merge.py "
                           "for this MyST-NB version (requirements.txt pins 1.4.0)")
    render.coalesce_streams = merge_streams
    return {"parallel_read_safe": True, "parallel_write_safe": True}
