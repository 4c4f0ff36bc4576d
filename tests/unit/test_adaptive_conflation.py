"""The lane processor's adaptive conflation window: caught up, changed entities are
published once per short window; while the broker holds more lane input behind what was
folded (a backlog), publishing waits up to the stretched maximum, and goes back to the
short window as soon as the backlog is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from tests.unit.fakes import Event, Message
from trustscore_stream.agents.lanes import LaneStage, _Work
from trustscore_stream.metrics import Metrics
from trustscore_stream.settings import load_settings


class Recording:
    """An engine that records when it was asked to publish."""

    pending_events = 0

    def __init__(self) -> None:
        self.publishes = 0
        self.folds = 0

    async def fold(self, records: Sequence[Any]) -> None:
        self.folds += 1

    async def fold_links(self, records: Sequence[Any]) -> None:
        return None

    async def publish(self) -> None:
        self.publishes += 1

    async def checkpoint(self) -> None:
        return None


def make_stage(waiting: list[int]) -> tuple[LaneStage, Recording, Metrics]:
    settings = load_settings(
        {
            "TRUSTSCORE_CONFLATION_WINDOW": "0.05",
            "TRUSTSCORE_CONFLATION_MAX": "1.5",
            "TRUSTSCORE_CHECKPOINT_INTERVAL": "60",
        }
    )
    engine, metrics = Recording(), Metrics()
    stage = LaneStage(settings, None, metrics, engine=engine)  # type: ignore[arg-type]
    stage._waiting_behind = lambda event: waiting[0]
    return stage, engine, metrics


def submit(stage: LaneStage, offset: int) -> None:
    event: Any = Event(Message("lane-normal", 0, offset))
    stage.scheduler.push("normal", _Work("normal", [], events=[event]), 0.0)
    stage._wakeup.set()


def published(metrics: Metrics, trigger: str) -> float:
    value = metrics.registry.get_sample_value(
        "trustscore_scoring_publishes_total", {"trigger": trigger}
    )
    return value or 0.0


@asynccontextmanager
async def running(waiting: list[int]) -> AsyncIterator[tuple[LaneStage, Recording, Metrics]]:
    """A stage whose processor runs for the block; `waiting[0]` is what the broker holds
    behind each folded record."""
    stage, engine, metrics = make_stage(waiting)
    processor = asyncio.create_task(stage.run_processor())
    try:
        yield stage, engine, metrics
    finally:
        processor.cancel()


async def test_caught_up_publishes_once_per_short_window() -> None:
    async with running([0]) as (stage, engine, metrics):
        submit(stage, 0)
        await asyncio.sleep(0.3)
        assert engine.folds == 1 and engine.publishes == 1
        assert published(metrics, "window") == 1


async def test_a_backlog_stretches_the_window_until_caught_up() -> None:
    waiting = [100]  # the broker holds 100 more lane records behind each folded one
    async with running(waiting) as (stage, engine, metrics):
        for offset in range(10):  # 0.5 s of input: ten short windows' worth
            submit(stage, offset)
            await asyncio.sleep(0.05)
        assert engine.folds == 10
        assert engine.publishes == 0  # conflated while behind (a fixed window: ~10)

        waiting[0] = 0  # the next record is the last one: caught up
        submit(stage, 10)
        await asyncio.sleep(0.3)
        assert engine.publishes == 1 and published(metrics, "window") == 1


async def test_a_backlog_still_publishes_at_the_stretched_maximum() -> None:
    async with running([100]) as (stage, engine, metrics):
        submit(stage, 0)
        await asyncio.sleep(0.5)
        assert engine.publishes == 0
        await asyncio.sleep(1.5)  # past the 1.5 s maximum from the first change
        assert engine.publishes == 1 and published(metrics, "backlog_max") == 1
