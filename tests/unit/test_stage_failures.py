"""Failure paths of the stages with in-memory fakes: a failing batch is never acked, a
transient handler failure goes to the retry topic on the events' own partition with
backoff, and past the last attempt every event is dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest

from tests.stack import sale
from trustscore_stream.agents import batches
from trustscore_stream.agents.lanes import LaneStage, TransientError, _Work
from trustscore_stream.agents.scoring import LaneRecord
from trustscore_stream.events.classification import LANES, classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.retry import RetryEnvelope
from trustscore_stream.events.routed import Routed, routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import load_settings


@dataclass
class FakeTopic:
    name: str
    sent: list[dict[str, Any]] = field(default_factory=list)

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, **kwargs: Any) -> Any:
        self.sent.append(kwargs)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)  # like Faust: send() enqueues, the future is the delivery
        return delivered


@dataclass
class FakeTopics:
    dlq: FakeTopic = field(default_factory=lambda: FakeTopic("dlq"))
    retry: FakeTopic = field(default_factory=lambda: FakeTopic("retry"))
    lanes: dict[str, FakeTopic] = field(
        default_factory=lambda: {lane: FakeTopic(f"lane-{lane}") for lane in LANES}
    )


def items(count: int) -> list[Routed]:
    now = datetime.now(UTC)
    envelopes = decode_record(orjson.dumps([sale(f"e{i}", token=i) for i in range(count)]))
    return [routed(e, classify(e, now), time.time()) for e in envelopes.envelopes]


class Failing:
    pending_events = 0

    async def fold(self, records: Any) -> None:
        raise TransientError("database unavailable")

    async def publish(self) -> None:
        return None

    async def checkpoint(self) -> None:
        return None


@dataclass
class Message:
    topic: str = "lane-normal"
    partition: int = 0
    offset: int = 0


@dataclass
class Event:
    message: Message = field(default_factory=Message)


def work(batch: list[Routed], attempt: int) -> _Work:
    return _Work("normal", [LaneRecord(Event(), batch)], attempt)  # type: ignore[arg-type]


async def test_transient_failure_goes_to_retry_then_dlq() -> None:
    settings = load_settings({"TRUSTSCORE_RETRY_MAX_ATTEMPTS": "3"})
    topics = FakeTopics()
    stage = LaneStage(settings, topics, Metrics(), engine=Failing())  # type: ignore[arg-type]
    batch = items(4)
    before = time.time()
    await stage._handle("normal", work(batch, 0))
    after = time.time()
    assert topics.dlq.sent == []
    partition = partition_for(batch[0].partition_key, settings.partitions)
    (record,) = topics.retry.sent
    assert record["partition"] == partition
    retry = msgspec.json.decode(record["value"], type=RetryEnvelope)
    assert retry.attempt == 1 and retry.reason == "database unavailable"
    assert [i.event_id for i in retry.items] == ["e0", "e1", "e2", "e3"]
    # Base 0.5 s with equal jitter: 0.25–0.5 s after the moment of the failure.
    assert before + 0.25 <= retry.not_before <= after + 0.5

    # Second failure: backoff doubles; third (the last allowed): dead-lettered, not lost.
    before = time.time()
    await stage._handle("normal", work(batch, 1))
    after = time.time()
    later = msgspec.json.decode(topics.retry.sent[-1]["value"], type=RetryEnvelope)
    assert later.attempt == 2 and before + 0.5 <= later.not_before <= after + 1.0
    await stage._handle("normal", work(batch, 2))
    assert len(topics.retry.sent) == 2
    assert [d["value"]["reason"] for d in topics.dlq.sent] == ["retries_exhausted"] * 4
    assert [d["value"]["event_id"] for d in topics.dlq.sent] == ["e0", "e1", "e2", "e3"]
    assert "database unavailable" in topics.dlq.sent[0]["value"]["detail"]
    assert orjson.loads(topics.dlq.sent[0]["value"]["raw"])["event_id"] == "e0"


class FakeApp:
    def __init__(self) -> None:
        self.crashed: list[BaseException] = []

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


async def test_failing_batch_is_not_acked_and_stops_the_worker() -> None:
    app = FakeApp()
    acked: list[int] = []

    async def work() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await batches.fail_fast(app, work())  # type: ignore[arg-type]
        acked.append(1)  # the stages ack only after fail_fast returns
    assert acked == [] and len(app.crashed) == 1
