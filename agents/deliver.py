"""Delivery of notifications on their channels: a durable outbox in the database
(`deliveries`), worked by every worker.

Each round claims the due deliveries for a lease (so two workers never try the same one at
once, and one that dies mid-attempt is retried after the lease), sends them concurrently,
and records every attempt. A failure is retried with exponential backoff and jitter; after
`TRUSTSCORE_DELIVERY_MAX_ATTEMPTS` the delivery is dead: it stays in the database with all
its attempts (visible at `GET /api/v1/notifications/{id}/deliveries`) and a record goes to
`trustscore-deliveries-dlq`. Never dropped. A receiver may see a delivery twice if a worker
dies between sending and recording: `X-TrustScore-Delivery` lets it deduplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import faust
import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from trustscore_stream.db.notifications import (
    AttemptOutcome,
    DeliveryJob,
    claim_due_deliveries,
    escalate_unread,
    record_attempts,
    unpushed_before,
)
from trustscore_stream.events.retry import backoff_delay
from trustscore_stream.metrics import Metrics
from trustscore_stream.notifications.channels import Channels
from trustscore_stream.notifications.content import KINDS
from trustscore_stream.output import Output
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)

CLAIM_BATCH = 100
SWEEP_S = 30.0


def _log_attempt(job: DeliveryJob, outcome: AttemptOutcome, result: str) -> None:
    """One line per attempt (INFO: deliveries are few and each is a user-visible effect),
    with the notification's events, so `grep <event_id>` reaches its deliveries. Never the
    target (an address, or a URL that may hold credentials) nor the secret."""
    data = job.notification.get("data") or {}
    cause = data.get("cause_event_id")
    log.info(
        "delivery %s of notification %s on %s: %s (attempt %d)",
        job.id,
        job.notification.get("id"),
        job.channel,
        result,
        outcome.attempt,
        extra={
            "stage": "delivery",
            "delivery_id": job.id,
            "notification_id": job.notification.get("id"),
            "channel": job.channel,
            "result": result,
            "attempt": outcome.attempt,
            "event_id": cause,
            "event_ids": data.get("cause_event_ids") or [cause],
            **({} if outcome.sent else {"detail": outcome.detail}),
        },
    )


class DeliveryStage:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        engine: Engine,
        output: Output,
        push: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.engine = engine
        self.output = output
        self.channels = Channels(settings)
        self._http: aiohttp.ClientSession | None = None
        self._stuck: set[str] = set()
        self.push = push

    def register(self, app: faust.App) -> None:
        app.timer(self.settings.delivery_poll_s, name="deliver")(self.tick)
        app.timer(SWEEP_S, name="push-sweep")(self.sweep)

    async def sweep(self) -> None:
        """Push notifications whose push was interrupted (a crash or a database blip between
        recording and pushing): unpushed in two sweeps in a row, so not the notifier's own
        work in progress. The same marker keeps a push from repeating."""
        try:
            stuck = set(
                await asyncio.to_thread(
                    unpushed_before, self.engine, datetime.now(UTC) - timedelta(seconds=SWEEP_S)
                )
            )
            again, self._stuck = sorted(stuck & self._stuck), stuck
            if again:
                await self.push(again)
        except SQLAlchemyError as exc:  # the database is down: the next sweep finds them
            log.warning("push sweep skipped: %s", exc)
        except Exception:  # a timer that raises stops the worker: log, try next sweep
            log.exception("push sweep failed")

    async def tick(self) -> None:
        try:
            after = timedelta(seconds=self.settings.escalate_after_s)
            escalated = await asyncio.to_thread(
                escalate_unread, self.engine, datetime.now(UTC), after
            )
            self.metrics.escalations.inc(escalated)
            while await self.round() == CLAIM_BATCH:
                pass  # a full batch: there may be more due right now
        except SQLAlchemyError as exc:  # the database is down: the outbox waits for it
            log.warning("deliveries not worked this round: %s", exc)
        except Exception:  # a timer that raises stops the worker: log, try next round
            log.exception("delivery round failed")

    async def round(self) -> int:
        now = datetime.now(UTC)
        lease = timedelta(seconds=self.settings.delivery_timeout_s * 2 + 30)
        jobs = await asyncio.to_thread(claim_due_deliveries, self.engine, now, CLAIM_BATCH, lease)
        if not jobs:
            return 0
        if self._http is None:
            self._http = aiohttp.ClientSession()
        results = await asyncio.gather(*(self.channels.send(self._http, job) for job in jobs))
        outcomes = [
            self._outcome(job, sent, detail)
            for job, (sent, detail) in zip(jobs, results, strict=True)
        ]
        await asyncio.to_thread(record_attempts, self.engine, outcomes)
        for job, outcome in zip(jobs, outcomes, strict=True):
            result = "sent" if outcome.sent else ("retry" if outcome.retry_at else "dead")
            self.metrics.deliveries.labels(_kind(job), job.channel, result).inc()
            _log_attempt(job, outcome, result)
            if result == "dead":
                await self._dead_letter(job, outcome)
        return len(jobs)

    def _outcome(self, job: DeliveryJob, sent: bool, detail: str) -> AttemptOutcome:
        attempt = job.attempts + 1
        retry_at = None
        if not sent and attempt < self.settings.delivery_max_attempts:
            delay = backoff_delay(
                attempt, self.settings.delivery_base_delay_s, self.settings.delivery_max_delay_s
            )
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        return AttemptOutcome(job.id, attempt, sent, detail, retry_at)

    async def _dead_letter(self, job: DeliveryJob, outcome: AttemptOutcome) -> None:
        record = {
            "reason": "delivery_failed",
            "detail": outcome.detail,
            "delivery_id": job.id,
            "channel": job.channel,
            "attempts": outcome.attempt,
            "notification": job.notification,
            "dead_lettered_at": time.time(),
        }
        await self.output.send(
            self.topics.deliveries_dlq, key=job.id.encode(), value=orjson.dumps(record)
        )
        await self.output.flush()
        log.warning(
            "delivery %s (%s) dead after %d attempts: %s",
            job.id,
            job.channel,
            outcome.attempt,
            outcome.detail,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _kind(job: DeliveryJob) -> str:
    """The notification's kind as a metric label (bounded: the CONTRACT §5 kinds)."""
    kind = job.notification.get("kind")
    return kind if isinstance(kind, str) and kind in KINDS else "other"
