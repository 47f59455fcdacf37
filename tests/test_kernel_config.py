"""The kernel configuration that `make install` puts into the environment.

It drops ipykernel's start-up notice about unencrypted TCP (which fills the build and test
logs) and nothing else.
"""

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "etc" / "ipython_kernel_config.py"
NOTICE = ("Kernel is running over TCP without encryption. All communication (including code and "
          "outputs) is sent in plain text and is susceptible to eavesdropping.")


def _record(msg):
    return logging.LogRecord("IPKernelApp", logging.WARNING, __file__, 1, msg, None, None)


def test_make_install_put_the_config_where_kernels_of_this_environment_read_it():
    installed = Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py"
    assert installed.read_text() == SOURCE.read_text()


def test_the_filter_drops_only_the_tcp_notice():
    namespace = {}
    exec(compile(SOURCE.read_text(), str(SOURCE), "exec"), namespace)
    logger = logging.getLogger("IPKernelApp")
    added = [f for f in logger.filters if type(f).__name__ == "_DropUnencryptedTcpNotice"]
    try:
        assert added, "the config adds no filter to the IPKernelApp logger"
        keep = added[-1].filter
        assert not keep(_record(NOTICE))
        assert keep(_record("Failed to load connection file: 'kernel.json'"))
        assert keep(_record("Kernel is running"))
    finally:
        for f in added:
            logger.removeFilter(f)
