"""The push sweep while the database is down: a warning, and the next sweep tries again
(the database outage drill saw an ERROR with a traceback for this expected condition)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from trustscore_stream.agents.deliver import DeliveryStage
from trustscore_stream.db.engine import create_engine_for
from trustscore_stream.embedded import free_port
from trustscore_stream.metrics import Metrics
from trustscore_stream.settings import load_settings


async def test_sweep_without_a_database_warns(caplog: pytest.LogCaptureFixture) -> None:
    pushed: list[list[str]] = []

    async def push(ids: list[str]) -> None:
        pushed.append(ids)

    nothing_listens = f"postgresql+psycopg://trustscore@127.0.0.1:{free_port()}/none"
    engine = create_engine_for(nothing_listens)
    settings = load_settings({"TRUSTSCORE_BROKER": "kafka://127.0.0.1:1"})
    stage: Any = DeliveryStage(settings, None, Metrics(), engine, None, push)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="trustscore_stream.agents.deliver"):
            await stage.sweep()
    finally:
        engine.dispose()
    assert pushed == []
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "push sweep skipped")
    ]
