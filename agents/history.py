"""Score history → the database: the internal history topic, written in batches.

Every published score version arrives here as part of a per-partition record (scoring sends
one per conflation window). A batch of records is one database transaction, idempotent on
(entity, version), and the records are acknowledged only after it commits. A database that
is down is retried with capped exponential backoff for as long as it takes: history waits
(its lag grows, visible in metrics) and scoring goes on; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import msgspec
from faust.types import EventT, StreamT
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.agents.corrupt_records import dead_letter_corrupt
from trustscore_stream.db.history import EncodedJson, ScoreVersionRow, record_score_versions
from trustscore_stream.events.retry import backoff_delay
from trustscore_stream.metrics import Metrics
from trustscore_stream.scoring.history import HistoryRow, decode_history
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)


def version_row(row: HistoryRow) -> ScoreVersionRow:
    return ScoreVersionRow(
        entity=row.entity,
        version=row.version,
        score=row.score,
        level=row.level,
        confidence=row.confidence,
        model_version=row.model_version,
        factors=EncodedJson(bytes(row.factors).decode()),
        factors_changed=tuple(row.factors_changed),
        cause_event_id=row.cause_event_id,
        at=row.at,
    )


class HistoryStage:
    def __init__(self, settings: Settings, topics: Topics, metrics: Metrics, engine: Engine):
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.engine = engine
        self.db_ready = asyncio.Event()

    def register(self, app: faust.App) -> None:
        self.app = app
        app.agent(self.topics.history, name="history", concurrency=1)(self.run)

    async def run(self, stream: StreamT[Any]) -> None:
        async for events in event_batches(stream, 200, self.settings.take_within_s):
            await fail_fast(self.app, self._write(events))
            await ack_all(stream, events)

    async def _write(self, events: list[EventT[bytes]]) -> None:
        rows: list[ScoreVersionRow] = []
        for event in events:
            try:
                rows.extend(version_row(r) for r in decode_history(event.value))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await dead_letter_corrupt(
                    self.topics, self.metrics, event, f"corrupt history record: {exc}"
                )
        if not rows:
            return
        await self.db_ready.wait()
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                written = await asyncio.to_thread(record_score_versions, self.engine, rows)
            except SQLAlchemyError as exc:
                attempt += 1
                self.metrics.db_failures.inc()
                self.metrics.retries.labels("history").inc()
                delay = backoff_delay(
                    attempt, self.settings.retry_base_delay_s, self.settings.retry_max_delay_s
                )
                log.warning(
                    "score history not written (%s, attempt %d); retrying in %.1fs",
                    type(exc).__name__,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self.metrics.history_rows.inc(written)
                return
            finally:
                self.metrics.db_write_seconds.observe(time.perf_counter() - started)
