# Installed by `make install` into .venv/etc/ipython/, where every IPython kernel started from
# .venv reads it (IPython's per-environment configuration directory).
#
# ipykernel warns at every kernel start that its messages travel over TCP without encryption.
# The book's kernels are started by nbclient/nbval on this machine's loopback interface for one
# notebook each, so the notice only buries real output in the build and test logs. This drops
# that one message; every other log record of the kernel is kept.
import logging


class _DropUnencryptedTcpNotice(logging.Filter):
    def filter(self, record):
        return not str(record.msg).startswith("Kernel is running over TCP without encryption")


logging.getLogger("IPKernelApp").addFilter(_DropUnencryptedTcpNotice())
