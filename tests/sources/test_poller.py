"""Pollers against a local HTTP provider that answers 200, 304, 500, slowly and garbage;
envelopes and dead letters read back from the session broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import tomllib
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.stack import CONTRACT, Stack
from trustscore_stream.embedded import free_port
from trustscore_stream.sources.metrics import SourceMetrics
from trustscore_stream.sources.poll_config import PollSource, parse_poll_config
from trustscore_stream.sources.poller import Poller
from trustscore_stream.sources.publisher import Publisher
from trustscore_stream.topics import DLQ, EVENTS

pytestmark = pytest.mark.integration

OTHER = "0x" + "c3" * 20


def config(url: str, **extra: Any) -> str:
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return f"""
[[poll]]
name = "floors"
url = "{url}"
interval = 30
timeout = 0.3
rate = 100
backoff_base = 1.0
backoff_max = 8.0
type = "market_data"
source = "market"
items = "$.collections[*]"
event_id = "$.id"
{lines}
[poll.fields]
contract = "$.address"
"payload.floor_price" = {{ path = "$.floor", as = "money" }}
"payload.currency" = "ETH"
[poll.anomaly]
factor = 100
min_samples = 1
"""


@dataclass
class Provider:
    """Answers requests from a script, one entry per request, and records the requests."""

    script: list[tuple[str, Any]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    two_requests: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if len(self.requests) >= 2:
            self.two_requests.set()
        kind, value = self.script.pop(0) if self.script else ("status", 503)
        if kind == "json":
            body, etag = value
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            return web.json_response(body, headers={"ETag": etag})
        if kind == "status":
            return web.Response(status=value, text="upstream failed")
        if kind == "slow":
            await asyncio.sleep(value)
            return web.json_response({"collections": []})
        return web.Response(body=value, content_type="application/json")  # garbage


@contextlib.asynccontextmanager
async def serve(provider: Provider) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/floors", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/floors"
    finally:
        await runner.cleanup()


def source_from(text: str) -> PollSource:
    return parse_poll_config(tomllib.loads(text), {})[0]


def dlq(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def flat(records: list[Any]) -> list[dict[str, Any]]:
    return [e for r in records for e in orjson.loads(r.value)]


async def test_poller_handles_every_kind_of_answer(stack: Stack) -> None:
    first = {
        "collections": [
            {"id": "a-1", "address": CONTRACT, "floor": 1.5},
            {"id": "b-1", "address": OTHER, "floor": "0.25"},
            {"id": "bad-1", "address": CONTRACT},  # no floor: cannot be mapped
            {"id": "bad-2", "address": "0x1234", "floor": 1},  # not an address: invalid
        ]
    }
    anomalous = {
        "collections": [
            {"id": "a-2", "address": CONTRACT, "floor": 1.6},
            {"id": "b-2", "address": OTHER, "floor": 250},  # 1000x the median: anomaly
        ]
    }
    provider = Provider(
        [
            ("json", (first, '"v1"')),
            ("json", (first, '"v1"')),  # unchanged: 304
            ("status", 500),
            ("slow", 2.0),  # beyond the 0.3 s timeout
            ("garbage", b"<html>oops</html>"),
            ("json", (anomalous, '"v2"')),
        ]
    )
    publisher = Publisher(stack.broker.bootstrap, stack.topic(EVENTS), stack.topic(DLQ))
    await publisher.start()
    metrics = SourceMetrics()
    try:
        async with serve(provider) as url, aiohttp.ClientSession() as http:
            poller = Poller(source_from(config(url)), publisher, http, metrics)
            delays = [await poller.poll_once() for _ in range(6)]
    finally:
        await publisher.stop()

    assert delays[0] == 30 and delays[1] == 30  # 200, then 304
    assert 0.5 <= delays[2] <= 1.0  # 500: first backoff, jittered in [base/2, base]
    assert 1.0 <= delays[3] <= 2.0  # timeout: second
    assert 2.0 <= delays[4] <= 4.0  # garbage: third
    assert delays[5] == 30  # success resets the backoff
    assert provider.requests[1]["If-None-Match"] == '"v1"'  # conditional request
    assert "If-None-Match" not in provider.requests[0]

    events = flat(await stack.consume("trustscore-events", until=3, settle=0.3))
    assert sorted(e["event_id"] for e in events) == ["floors:a-1", "floors:a-2", "floors:b-1"]
    a1 = next(e for e in events if e["event_id"] == "floors:a-1")
    assert a1["payload"] == {"floor_price": "1.5", "currency": "ETH"}
    assert a1["type"] == "market_data" and a1["source"] == "market"

    letters = dlq(await stack.consume("trustscore-events-dlq", until=4, settle=0.3))
    by_reason = {letter["reason"]: letter for letter in letters}
    assert sorted(by_reason) == ["anomaly", "invalid_response", "invalid_value", "mapping_failed"]
    assert len(letters) == 4
    assert orjson.loads(by_reason["mapping_failed"]["raw"])["id"] == "bad-1"
    assert "payload.floor_price" in by_reason["mapping_failed"]["detail"]
    assert orjson.loads(by_reason["invalid_value"]["raw"])["id"] == "bad-2"
    assert by_reason["invalid_response"]["raw"] == "<html>oops</html>"
    assert orjson.loads(by_reason["anomaly"]["raw"])["event_id"] == "floors:b-2"
    assert "100x off the recent median 0.25" in by_reason["anomaly"]["detail"]
    for letter in letters:
        assert letter["topic"] == stack.topic(EVENTS)
        assert letter["origin"] == {"source": "poll", "name": "floors", "url": url}
        assert letter["at"].endswith("Z")

    def polls(outcome: str) -> float | None:
        labels = {"source": "floors", "outcome": outcome}
        return metrics.registry.get_sample_value("trustscore_source_polls_total", labels)

    assert [polls(o) for o in ("ok", "not_modified", "http_error", "timeout", "garbage")] == [
        2.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ]


async def test_requests_respect_the_rate_limit(stack: Stack) -> None:
    body = {"collections": []}
    provider = Provider([("json", (body, f'"{n}"')) for n in range(4)])
    publisher = Publisher(stack.broker.bootstrap, stack.topic(EVENTS), stack.topic(DLQ))
    await publisher.start()
    try:
        async with serve(provider) as url, aiohttp.ClientSession() as http:
            poller = Poller(
                source_from(config(url).replace("rate = 100", "rate = 5")), publisher, http
            )
            started = time.monotonic()
            for _ in range(4):
                await poller.poll_once()
            elapsed = time.monotonic() - started
    finally:
        await publisher.stop()
    assert elapsed >= 3 * 0.2 * 0.9  # 4 requests at 5/s: three waits of 0.2 s


async def test_source_poll_command(stack: Stack, tmp_path: Path) -> None:
    body = {"collections": [{"id": "cli-1", "address": CONTRACT, "floor": 2}]}
    provider = Provider([("json", (body, '"c1"'))])
    async with serve(provider) as url:
        path = tmp_path / "sources.toml"
        path.write_text(config(url).replace("interval = 30", "interval = 0.2"))
        env = {
            **os.environ,
            "TRUSTSCORE_BROKER": stack.broker.url,
            "TRUSTSCORE_TOPIC_PREFIX": stack.prefix,
        }
        command = ["-m", "trustscore_stream.cli", "source", "poll", "--config", str(path)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, env=env, stdout=PIPE, stderr=STDOUT
        )
        try:
            events = flat(await stack.consume("trustscore-events", until=1, timeout=30))
            await asyncio.wait_for(provider.two_requests.wait(), 10)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, output.decode()
    assert [e["event_id"] for e in events] == ["floors:cli-1"]
    assert provider.requests[1].get("If-None-Match") == '"c1"'  # the next poll was conditional
