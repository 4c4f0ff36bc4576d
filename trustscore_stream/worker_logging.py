"""The worker's log levels, as the operator asked for them.

At `-l warn` or above Faust's worker drives a terminal spinner by lowering the ROOT logger to
DEBUG (and setting the first root handler to the `-l` level), so every debug call in aiokafka
and Faust builds a log record whose only use is to turn the spinner: ~3 % of a busy worker's
CPU, measured with py-spy (docs/benchmarks.md). The levels come from the settings
(TRUSTSCORE_LOG_LEVEL / TRUSTSCORE_LOG_LEVELS, logs/setup.py), not from `-l`.
"""

from __future__ import annotations

import logging

from trustscore_stream.logs.setup import HANDLER


async def undo_spinner_log_level(root_level: int | None = None) -> None:
    """Drop Faust's spinner handler and put the levels back (run as an app task: the worker
    sets logging up before it starts). With `root_level` (the configured default), our
    handler passes everything again and the root gets that level; without it the root gets
    the lowest level of the remaining handlers."""
    from faust.utils.terminal.spinners import SpinnerHandler

    root = logging.getLogger()
    spinners = [h for h in root.handlers if isinstance(h, SpinnerHandler)]
    if not spinners:
        return
    for spinner in spinners:
        root.removeHandler(spinner)
    if root_level is not None:
        for handler in root.handlers:
            if handler.get_name() == HANDLER:
                handler.setLevel(logging.NOTSET)  # per-component levels decide
        root.setLevel(root_level)
        return
    levels = [h.level for h in root.handlers if h.level > logging.NOTSET]
    root.setLevel(min(levels) if levels else logging.WARNING)
