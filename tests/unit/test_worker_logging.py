"""The worker's root log level after Faust's spinner lowered it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from faust.utils.terminal.spinners import Spinner, SpinnerHandler

from trustscore_stream.worker_logging import undo_spinner_log_level


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    logger.handlers.clear()
    # Importing the app applies the per-component levels (trustscore_stream/logs), which
    # give library loggers (aiokafka, faust, ...) levels of their own; these tests are about
    # the root's, so every other logger defers to it while they run.
    others = [
        other
        for other in logging.root.manager.loggerDict.values()
        if isinstance(other, logging.Logger)
    ]
    levels = [other.level for other in others]
    for other in others:
        other.setLevel(logging.NOTSET)
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)
    for other, other_level in zip(others, levels, strict=True):
        other.setLevel(other_level)


async def test_spinner_debug_level_is_undone(root: logging.Logger) -> None:
    default = logging.StreamHandler(io.StringIO())
    default.setLevel(logging.WARNING)
    root.addHandler(default)
    root.addHandler(SpinnerHandler(Spinner(file=io.StringIO()), level=logging.DEBUG))
    root.setLevel(logging.DEBUG)  # what faust.worker.Worker._setup_spinner_handler does
    assert logging.getLogger("aiokafka.producer").isEnabledFor(logging.DEBUG)

    await undo_spinner_log_level()

    assert default in root.handlers
    assert not any(isinstance(h, SpinnerHandler) for h in root.handlers)
    assert root.level == logging.WARNING
    assert not logging.getLogger("aiokafka.producer").isEnabledFor(logging.DEBUG)


async def test_without_spinner_nothing_changes(root: logging.Logger) -> None:
    root.setLevel(logging.INFO)
    await undo_spinner_log_level()
    assert root.level == logging.INFO
