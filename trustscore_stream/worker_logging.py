"""The worker's root log level, as the operator asked for it.

At `-l warn` or above Faust's worker drives a terminal spinner by lowering the ROOT logger to
DEBUG, so every debug call in aiokafka and Faust builds a log record whose only use is to turn
the spinner: ~3 % of a busy worker's CPU, measured with py-spy (docs/benchmarks.md).
"""

from __future__ import annotations

import logging


async def undo_spinner_log_level() -> None:
    """Drop Faust's spinner handler and put the root level back to the lowest level of the
    remaining handlers (run as an app task: the worker sets logging up before it starts)."""
    from faust.utils.terminal.spinners import SpinnerHandler

    root = logging.getLogger()
    spinners = [h for h in root.handlers if isinstance(h, SpinnerHandler)]
    if not spinners:
        return
    for handler in spinners:
        root.removeHandler(handler)
    levels = [h.level for h in root.handlers if h.level > logging.NOTSET]
    root.setLevel(min(levels) if levels else logging.WARNING)
