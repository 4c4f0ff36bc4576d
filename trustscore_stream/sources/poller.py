"""Scheduled HTTP pollers for market and social APIs (one task per configured source).

A poll sends the last `ETag` / `Last-Modified` back as `If-None-Match` /
`If-Modified-Since`; 304 means nothing new. Items of a 200 answer are mapped to envelopes
by the source's declared mapping and validated; what cannot be mapped or validated, and
market data that fails the anomaly check, is dead-lettered with the reason. A failure
(timeout, connection error, non-2xx, unparseable body) backs off exponentially with jitter
up to `backoff_max`; success returns to the regular `interval`. Requests never exceed the
source's `rate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import orjson
from aiokafka.errors import KafkaError
from multidict import CIMultiDict

from trustscore_stream.events.envelope import Envelope, to_builtins
from trustscore_stream.events.retry import backoff_delay
from trustscore_stream.ingest_auth import TokenBucket
from trustscore_stream.sources.anomaly import AnomalyGuard
from trustscore_stream.sources.mapping import MappingError
from trustscore_stream.sources.metrics import SourceMetrics
from trustscore_stream.sources.poll_config import PollSource
from trustscore_stream.sources.publisher import Publisher, check

log = logging.getLogger(__name__)

# A provider answer larger than this is refused (and counted as a failure) before parsing.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# A dead letter keeps at most this much of an unusable body: a Kafka record has a size cap.
MAX_DEAD_LETTER_RAW = 64 * 1024

INVALID_RESPONSE = "invalid_response"
MAPPING_FAILED = "mapping_failed"
ANOMALY = "anomaly"


@dataclass
class Conditional:
    """Validators of the last good answer, sent back so an unchanged answer is a 304."""

    etag: str | None = None
    last_modified: str | None = None

    def request_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def update(self, response_headers: Mapping[str, str]) -> None:
        self.etag = response_headers.get("ETag")
        self.last_modified = response_headers.get("Last-Modified")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` in seconds (only the delta-seconds form; dates are ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def field_value(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Poller:
    def __init__(
        self,
        source: PollSource,
        publisher: Publisher,
        http: aiohttp.ClientSession,
        metrics: SourceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.publisher = publisher
        self.http = http
        self.metrics = metrics or SourceMetrics()
        self.clock = clock
        self.rng = rng or random.Random()
        self.conditional = Conditional()
        self.failures = 0
        # Burst of one: requests are spaced at least 1/rate apart, retries included.
        self.bucket = TokenBucket(rate=source.rate, burst=1.0)
        rule = source.anomaly
        self.guard = (
            AnomalyGuard(rule.factor, rule.window, rule.min_samples, rule.confirm_after)
            if rule
            else None
        )
        self.origin = {"source": "poll", "name": source.name, "url": source.url.split("?")[0]}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                delay = await self.poll_once()
            except KafkaError as exc:
                delay = self._failed("broker", f"broker error: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _rate_limit(self) -> None:
        wait = self.bucket.take(1.0, self.clock())
        if wait > 0:
            await asyncio.sleep(wait)
            # Refilled while waiting; a float rounding shortfall is not worth another wait.
            self.bucket.take(1.0, self.clock())

    def _failed(self, outcome: str, detail: str, at_least: float = 0.0) -> float:
        self.failures += 1
        self.metrics.polls.labels(self.source.name, outcome).inc()
        delay = backoff_delay(
            self.failures, self.source.backoff_base_s, self.source.backoff_max_s, self.rng
        )
        delay = max(delay, at_least)
        log.warning("poll %s: %s; next try in %.1fs", self.source.name, detail, delay)
        return delay

    async def poll_once(self) -> float:
        """One request and its effects; returns the seconds to wait before the next one."""
        await self._rate_limit()
        headers = {**self.source.headers, **self.conditional.request_headers()}
        timeout = aiohttp.ClientTimeout(total=self.source.timeout_s)
        try:
            async with self.http.get(self.source.url, headers=headers, timeout=timeout) as answer:
                status, answer_headers = answer.status, CIMultiDict(answer.headers)
                body = await answer.content.read(MAX_RESPONSE_BYTES + 1)
        except TimeoutError:
            return self._failed("timeout", f"no answer within {self.source.timeout_s}s")
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed("error", f"{type(exc).__name__}: {exc}")
        if status == 304:
            self.failures = 0
            self.metrics.polls.labels(self.source.name, "not_modified").inc()
            return self.source.interval_s
        if not 200 <= status < 300:
            wait = retry_after_seconds(answer_headers.get("Retry-After")) or 0.0
            return self._failed("http_error", f"HTTP {status}", at_least=wait)
        if len(body) > MAX_RESPONSE_BYTES:
            return self._failed("error", f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await self._dead_letter(
                INVALID_RESPONSE, f"HTTP {status} body is not JSON: {exc}", body
            )
            return self._failed("garbage", "answer is not JSON (dead-lettered)")
        await self._publish(document)
        # Only now: a crash before this point polls the same answer again.
        self.conditional.update(answer_headers)
        self.failures = 0
        self.metrics.polls.labels(self.source.name, "ok").inc()
        return self.source.interval_s

    async def _publish(self, document: Any) -> None:
        mapping = self.source.mapping
        now = datetime.now(UTC)
        candidates: list[dict[str, Any]] = []
        raws: list[bytes] = []
        letters: list[dict[str, Any]] = []
        for item in mapping.select_items(document):
            raw = orjson.dumps(item)
            try:
                candidates.append(mapping.envelope(item, now))
                raws.append(raw)
            except MappingError as exc:
                letters.append(self._letter(MAPPING_FAILED, str(exc), raw))
        checked = check(candidates)
        for rejection in checked.rejections:
            assert rejection.index is not None
            letters.append(self._letter(rejection.reason, rejection.detail, raws[rejection.index]))
        good: list[Envelope] = []
        for envelope in checked.envelopes:
            reason = self._anomaly(envelope)
            if reason is None:
                good.append(envelope)
            else:
                letters.append(self._letter(ANOMALY, reason, orjson.dumps(to_builtins(envelope))))
        await self.publisher.send_envelopes(good)
        await self.publisher.send_dead_letters(letters)
        for kind in (e.type for e in good):
            self.metrics.events.labels(self.source.name, kind).inc()

    def _anomaly(self, envelope: Envelope) -> str | None:
        if self.guard is None or self.source.anomaly is None:
            return None
        value = field_value(to_builtins(envelope), self.source.anomaly.field)
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return f"{self.source.anomaly.field} is not a number: {value!r}"
        verdict = self.guard.check(envelope.entity, amount)
        if verdict.reason and verdict.ok:
            log.warning("poll %s: %s: %s", self.source.name, envelope.entity, verdict.reason)
        return None if verdict.ok else f"{envelope.entity}: {verdict.reason}"

    def _letter(self, reason: str, detail: str, raw: bytes) -> dict[str, Any]:
        self.metrics.dead_lettered.labels(self.source.name, reason).inc()
        extra: dict[str, Any] = {}
        if len(raw) > MAX_DEAD_LETTER_RAW:
            extra = {"truncated": True, "size": len(raw)}
            raw = raw[:MAX_DEAD_LETTER_RAW]
        return self.publisher.letter(
            reason=reason, detail=detail, raw=raw, origin=self.origin, **extra
        )

    async def _dead_letter(self, reason: str, detail: str, raw: bytes) -> None:
        await self.publisher.send_dead_letters([self._letter(reason, detail, raw)])


async def run_pollers(
    sources: Sequence[PollSource],
    publisher: Publisher,
    stop: asyncio.Event,
    metrics: SourceMetrics | None = None,
) -> None:
    metrics = metrics or SourceMetrics()
    async with aiohttp.ClientSession() as http:
        pollers = [Poller(source, publisher, http, metrics) for source in sources]
        await asyncio.gather(*(poller.run(stop) for poller in pollers))
