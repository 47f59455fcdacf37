"""JupyterLab renders the chapters' MyST (exercises, admonitions, {eq}) through jupyterlab-myst.

JupyterLab disables an extension whose shared packages conflict with its own (jupyterlab-myst
2.7.0 with JupyterLab 4.6 did), and still lists it: the check is that it is enabled *and* OK.
"""

import re
import subprocess
import sys
from pathlib import Path

JUPYTER = Path(sys.executable).parent / "jupyter"


def test_jupyterlab_myst_is_enabled_and_compatible():
    result = subprocess.run([str(JUPYTER), "labextension", "list"], capture_output=True, text=True, check=True)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    line = next((entry for entry in listing.splitlines() if "jupyterlab-myst" in entry), None)
    assert line is not None, f"jupyterlab-myst is not installed:\n{listing}"
    assert re.search(r"\benabled\s+OK\b", line), f"jupyterlab-myst is installed but not usable: {line.strip()}"
