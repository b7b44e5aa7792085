"""Crash injection for durability tests (off unless ISOPERP_FAILPOINT is set).

``hit(name)`` ends the process at once (``os._exit``: no cleanup, no flushing, like kill -9) when
$ISOPERP_FAILPOINT names this point, e.g. ``ISOPERP_FAILPOINT=after_send:postCheckpoint`` stops the
operator right after a checkpoint transaction reached the node and before its receipt.
"""

from __future__ import annotations

import os

EXIT_CODE = 137  # what a shell reports for SIGKILL


def hit(name: str) -> None:
    wanted = os.environ.get("ISOPERP_FAILPOINT")
    if wanted and name.startswith(wanted):
        os._exit(EXIT_CODE)
