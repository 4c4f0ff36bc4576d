"""Priority lanes and HTTP ingestion against the real broker and a real worker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import orjson
import pytest

from tests.stack import Stack, fraud, sale, scrape, social
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import encode_batch, routed
from trustscore_stream.ingest_auth import sign
from trustscore_stream.partitioning import partition_for

pytestmark = pytest.mark.integration


def lane_record(raw_envelopes: list[dict[str, object]], ingested_at: float) -> bytes:
    now = datetime.now(UTC)
    envelopes = decode_record(orjson.dumps(raw_envelopes)).envelopes
    return encode_batch([routed(e, classify(e, now), ingested_at) for e in envelopes])


async def test_bulk_backlog_does_not_delay_critical_and_is_drained(stack: Stack) -> None:
    producer = await stack.producer()
    key = b"collection:eth:0x5af0d9827e0c53e4799bb226655a1de152a425a5"
    partition = partition_for(key.decode(), stack.partitions)
    start = time.time()
    bulk_records, per_record = 100, 1000
    for r in range(bulk_records):
        value = lane_record([social(f"b{r}-{i}") for i in range(per_record)], start)
        await producer.send_and_wait(
            stack.topic("trustscore-lane-bulk"), value, key=key, partition=partition
        )
    critical = lane_record([fraud("crit")], start)
    await producer.send_and_wait(
        stack.topic("trustscore-lane-critical"), critical, key=key, partition=partition
    )
    # The worker starts with the whole backlog waiting: 100,000 bulk events and 1 critical.
    worker = stack.start_worker("w")
    await worker.wait_ready()
    total_bulk = bulk_records * per_record
    deadline = time.monotonic() + 60
    metrics: dict[str, float] = {}
    while time.monotonic() < deadline:
        metrics = scrape(worker)
        if metrics.get('trustscore_lane_events_processed_total{lane="bulk"}') == total_bulk:
            break
        await asyncio.sleep(0.25)
    # Bulk is drained completely (never starved) ...
    assert metrics['trustscore_lane_events_processed_total{lane="bulk"}'] == total_bulk
    assert metrics['trustscore_lane_events_processed_total{lane="critical"}'] == 1
    # ... and the critical event, queued behind all of it, waited less than bulk did on average.
    critical_wait = metrics['trustscore_lane_wait_seconds_sum{lane="critical"}']
    bulk_mean = metrics['trustscore_lane_wait_seconds_sum{lane="bulk"}'] / total_bulk
    bulk_max_bucket = metrics['trustscore_lane_wait_seconds_count{lane="bulk"}']
    assert bulk_max_bucket == total_bulk
    assert critical_wait < bulk_mean, (critical_wait, bulk_mean)


async def test_http_ingestion(stack: Stack) -> None:
    worker = stack.start_worker("w")
    await worker.wait_ready()
    url = f"{worker.url}/api/v1/events"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=[sale("h1"), sale("h2", token=2)]) as answer:
            assert answer.status == 202
            assert await answer.json() == {"accepted": 2, "event_ids": ["h1", "h2"]}
        bad = [sale("h3"), {**sale("h4"), "type": "nope"}, {"event_id": "h5"}]
        async with http.post(url, json=bad) as answer:
            assert answer.status == 400
            body = await answer.json()
            assert body["error"] == "invalid_events" and body["accepted"] == 0
            assert [(e["index"], e["reason"]) for e in body["errors"]] == [
                (1, "unknown_type"),
                (2, "missing_field"),
            ]
        async with http.post(url, json=[sale(f"x{i}") for i in range(1001)]) as answer:
            assert answer.status == 413
        async with http.post(url, data=b"{not json") as answer:
            assert answer.status == 400
        async with http.get(f"{worker.url}/health") as answer:
            assert answer.status == 200
        async with http.get(f"{worker.url}/") as answer:
            assert answer.status == 200 and "TrustScore Stream" in await answer.text()
    # The accepted request went out as one batch record; nothing of the refused ones did.
    lanes = await stack.lane_events(until=2)
    assert sorted(i["event_id"] for i in lanes["normal"]) == ["h1", "h2"]
    records = await stack.consume("trustscore-events", until=1, settle=0.5)
    assert len(records) == 1
    assert [e["event_id"] for e in orjson.loads(records[0].value or b"")] == ["h1", "h2"]


async def test_http_ingestion_with_producer_keys(stack: Stack) -> None:
    worker = stack.start_worker(
        "w",
        extra={"TRUSTSCORE_INGEST_KEYS": "acme:s3cret,beta:other", "TRUSTSCORE_INGEST_RATE": "5"},
    )
    await worker.wait_ready()
    url = f"{worker.url}/api/v1/events"
    body = orjson.dumps([sale(f"k{i}", token=i) for i in range(10)])
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body) as answer:
            assert answer.status == 401
            assert (await answer.json())["error"] == "unauthorized"
        bad = {"Authorization": "Bearer wrong"}
        async with http.post(url, data=body, headers=bad) as answer:
            assert answer.status == 401
        forged = {"X-TrustScore-Key": "beta", "X-TrustScore-Signature": sign("s3cret", body)}
        async with http.post(url, data=body, headers=forged) as answer:
            assert answer.status == 401  # signed with another key's secret
        stamp = int(time.time()) - 3600
        replayed = {
            "X-TrustScore-Key": "beta",
            "X-TrustScore-Timestamp": str(stamp),
            "X-TrustScore-Signature": sign("other", body, stamp),
        }
        async with http.post(url, data=body, headers=replayed) as answer:
            assert answer.status == 401  # a correctly signed body, an hour old
        signed = {"X-TrustScore-Key": "beta", "X-TrustScore-Signature": sign("other", body)}
        async with http.post(url, data=body, headers=signed) as answer:
            assert answer.status == 202  # beta: 10 of its burst of 10
        bearer = {"Authorization": "Bearer s3cret"}
        async with http.post(url, data=body, headers=bearer) as answer:
            assert answer.status == 202  # acme has its own bucket
        # Five more need a second of refill at 5/s: a busy machine can take 0.2 s between two
        # requests (one event failed here once), hardly a whole second.
        more = orjson.dumps([sale(f"k9{i}", token=90 + i) for i in range(5)])
        async with http.post(url, data=more, headers=bearer) as answer:
            assert answer.status == 429
            assert int(answer.headers["Retry-After"]) >= 1
            assert (await answer.json())["error"] == "rate_limited"
