"""Runs the chain source in-process against a test stack's topics, and reads back what it
published (batch records flattened to envelopes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from tests.stack import Stack
from trustscore_stream.sources.chain import ChainSource
from trustscore_stream.sources.checkpoint import (
    CHECKPOINTS,
    CheckpointStore,
    checkpoint_topic_spec,
)
from trustscore_stream.sources.metrics import SourceMetrics
from trustscore_stream.sources.publisher import Publisher
from trustscore_stream.sources.settings import ChainSettings
from trustscore_stream.topics import DLQ, EVENTS
from trustscore_stream.topics_admin import ensure_topics


@dataclass
class Running:
    source: ChainSource
    publisher: Publisher
    checkpoints: CheckpointStore
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def metrics(self) -> SourceMetrics:
        return self.source.metrics

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def wait_processed(self, block: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.source.next_block or 0) <= block:
            if self.task.done():
                self.task.result()
                raise AssertionError("the source stopped")
            if time.monotonic() > deadline:
                raise AssertionError(f"block {block} not processed; at {self.source.next_block}")
            await asyncio.sleep(0.05)

    async def wait_seen(self, block: int, block_hash: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.source.tracker.hashes.get(block) != block_hash:
            if time.monotonic() > deadline:
                raise AssertionError(f"tip {block} {block_hash} never observed")
            await asyncio.sleep(0.02)

    async def halt(self) -> None:
        """Graceful stop (what SIGTERM does): the current step finishes first."""
        self.stop.set()
        if not self.task.done():  # a task that crashed was awaited by the test already
            await self.task
        await self.source.close()
        await self.checkpoints.stop()
        await self.publisher.stop()


def settings_for(urls: Sequence[str], **overrides: Any) -> ChainSettings:
    base = ChainSettings(
        rpc_urls=tuple(urls),
        confirmations=2,
        poll_interval_s=0.05,
        rpc_timeout_s=2.0,
        name="chain-test",
    )
    return replace(base, **overrides)


async def start_source(stack: Stack, settings: ChainSettings) -> Running:
    bootstrap = stack.broker.bootstrap
    await ensure_topics(bootstrap, [checkpoint_topic_spec(stack.topic(CHECKPOINTS))])
    publisher = Publisher(bootstrap, stack.topic(EVENTS), stack.topic(DLQ))
    checkpoints = CheckpointStore(bootstrap, stack.topic(CHECKPOINTS), settings.name)
    await publisher.start()
    await checkpoints.start()
    source = ChainSource(settings, publisher, checkpoints, SourceMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    return Running(source, publisher, checkpoints, stop, task)


async def published(stack: Stack, at_least: int, settle: float = 0.5) -> list[dict[str, Any]]:
    """Every envelope on the events topic, in order, once at least `at_least` are there."""
    envelopes: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(envelopes) < at_least and time.monotonic() < deadline:
        records = await stack.consume("trustscore-events", until=10**9, timeout=0.3)
        envelopes = [e for r in records for e in orjson.loads(r.value or b"[]")]
    await asyncio.sleep(settle)
    records = await stack.consume("trustscore-events", until=10**9, timeout=0.3)
    return [e for r in records for e in orjson.loads(r.value or b"[]")]
