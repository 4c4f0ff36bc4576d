"""Scoring through the real broker and worker: scenarios read back over REST, deltas on
`trustscore-deltas`, history from the database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from tests.stack import CONTRACT, Stack, fraud, sale, scrape
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import encode_batches, routed
from trustscore_stream.partitioning import partition_for
from trustscore_stream.processes import WorkerProcess

pytestmark = pytest.mark.integration

A = "0x" + "a1" * 20
B = "0x" + "b2" * 20
C = "0x" + "c3" * 20
NFT = f"nft:eth:{CONTRACT}:7"
COLLECTION = f"collection:eth:{CONTRACT}"
T0 = datetime.now(UTC) - timedelta(hours=5)


def when(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def nft_event(kind: str, event_id: str, hours: float, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "source": "chain",
        "occurred_at": when(hours),
        "schema_version": 1,
        "contract": CONTRACT,
        "token_id": "7",
        "payload": payload,
    }


def trade(event_id: str, seller: str, buyer: str, hours: float) -> dict[str, Any]:
    payload = {"seller": seller, "buyer": buyer, "price": "1.5", "currency": "ETH"}
    return nft_event("sale", event_id, hours, payload)


async def get_json(worker: WorkerProcess, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}{path}") as answer:
        return answer.status, await answer.json(content_type=None)


async def wait_score(
    worker: WorkerProcess, entity: str, ok: Any, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await get_json(worker, f"/api/v1/scores/{entity}")
        if status == 200 and ok(body):
            return dict(body)
        await asyncio.sleep(0.25)
    raise AssertionError(f"score of {entity} never matched; last answer: {body}")


async def test_ring_rug_pull_and_resolution(stack: Stack) -> None:
    worker = stack.start_worker("w")
    await worker.wait_ready()
    assert (await get_json(worker, "/api/v1/scores/nft:eth:0x12:1"))[0] == 400
    assert (await get_json(worker, f"/api/v1/scores/{NFT[:-1]}999"))[0] == 404

    mint = nft_event("mint", "m-1", 0, {"to": A})
    await stack.produce([[mint, trade("s-1", A, B, 1), trade("s-2", B, C, 1.5)]])
    before = await wait_score(worker, NFT, lambda b: b["version"] >= 1)
    assert before["factors"]["market_integrity"]["value"] > 60
    # A read is current before its version is published: wait for the published delta, so
    # the ring is not conflated into the same window as the first batch.
    deadline = time.monotonic() + 30
    while not any(r.key == NFT.encode() for r in await stack.consume("trustscore-deltas", until=1)):
        assert time.monotonic() < deadline, "the first version was never published"
    await stack.produce([trade("ring-close", C, A, 2.5)])  # A→B→C→A within 2h

    def ring_seen(body: dict[str, Any]) -> bool:
        evidence = body["factors"]["market_integrity"]["evidence"]
        return any("circular trade among 3 wallets" in e for e in evidence)

    ring = await wait_score(worker, NFT, ring_seen)
    integrity = ring["factors"]["market_integrity"]
    assert integrity["value"] < before["factors"]["market_integrity"]["value"] - 20
    text = next(e for e in integrity["evidence"] if "circular trade" in e)
    assert all(w in text for w in (A, B, C)) and "ring-close" in text
    assert ring["score"] < before["score"]
    settled = ring["score"]

    rug = fraud("rug-1", "critical", 0.95)
    await stack.produce([rug])
    risky = await wait_score(worker, NFT, lambda b: b["level"] == "high_risk")
    assert risky["score"] < 40

    resolved = fraud("rug-2", "critical", 0.95)
    resolved["payload"]["resolved"] = True
    await stack.produce([resolved])
    restored = await wait_score(worker, NFT, lambda b: b["level"] != "high_risk")
    assert restored["score"] == pytest.approx(settled, abs=0.5)

    # Deltas: versions of the NFT increase by one, each with its cause. The first batch's
    # changes fall into one conflation window (one version); the ring is the second. The
    # collection-level rug pull reaches this unwatched NFT on read only (no version).
    records = await stack.consume("trustscore-deltas", until=4, settle=1.0)
    deltas = [orjson.loads(r.value or b"") for r in records if r.key == NFT.encode()]
    versions = [d["version"] for d in deltas]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2
    assert {"entity", "score", "previous", "delta", "level", "factors_changed"} <= deltas[-1].keys()
    assert {"cause_event_id", "version", "at", "model_version"} <= deltas[-1].keys()
    # Lanes may reorder events of different priority (the stale mint went to bulk); each
    # change still names its cause.
    assert "ring-close" in [d["cause_event_id"] for d in deltas]
    assert all(d["previous"] is None for d in deltas[:1])

    status, history = await get_json(worker, f"/api/v1/scores/{NFT}/history?limit=2")
    assert status == 200 and [h["version"] for h in history] == versions[::-1][:2]
    status, collection = await get_json(worker, f"/api/v1/scores/{COLLECTION}")
    assert status == 200 and collection["entity"] == COLLECTION


async def test_a_backlog_stretches_the_conflation_window(stack: Stack) -> None:
    """40 lane records of 500 events each wait on the lane topic before the worker starts:
    while more lane input is waiting on the broker, publishing waits for the stretched
    maximum (0.1 s here) instead of the short window (0.05 s), and says so in its metric;
    every event is still folded."""
    total, per_record = 20_000, 500
    envelopes = [
        envelope
        for start in range(0, total, per_record)
        for envelope in decode_record(
            orjson.dumps(
                [sale(f"bl-{i}", token=i % 2_000) for i in range(start, start + per_record)]
            )
        ).envelopes
    ]
    assert len(envelopes) == total
    now = datetime.now(UTC)
    items = [routed(e, classify(e, now), time.time()) for e in envelopes]
    partition = partition_for(items[0].partition_key, stack.partitions)
    producer = await stack.producer()
    for start in range(0, total, per_record):
        (value,) = encode_batches(items[start : start + per_record])
        await producer.send_and_wait(
            stack.topic("trustscore-lane-normal"), value, partition=partition
        )
    worker = stack.start_worker(
        "w",
        extra={"TRUSTSCORE_CONFLATION_WINDOW": "0.05", "TRUSTSCORE_CONFLATION_MAX": "0.1"},
    )
    await worker.wait_ready()
    processed = 'trustscore_lane_events_processed_total{lane="normal"}'
    deadline = time.monotonic() + 90
    metrics = scrape(worker)
    while metrics.get(processed, 0.0) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        metrics = scrape(worker)
    assert metrics.get(processed) == total
    # The processor folds at most 16 lane records (8,000 events, far over 0.1 s) at a time,
    # and the broker held more behind the first two such batches.
    stretched = metrics.get('trustscore_scoring_publishes_total{trigger="backlog_max"}', 0.0)
    assert stretched >= 1
    # Every NFT and the collection got a first version.
    assert metrics["trustscore_score_versions_total"] >= 2_001
