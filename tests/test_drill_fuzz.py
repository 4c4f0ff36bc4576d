"""Reliability drill: hostile input on the real worker's input topic.

A seeded corpus (tests/fuzz_corpus.py: valid envelopes, valid-but-edge values, wrong types,
missing fields, huge strings, deep nesting, invalid UTF-8, repeated ids, random bytes, batch
records mixing all of these) goes to `trustscore-events`. The worker must not crash, and
every envelope must be accounted for: accepted (then on a lane once per distinct id, the
repeats counted as duplicates) or dead-lettered with its reason and its original bytes. The
oracle for which is which is the pure decoder (its own properties are tested in
tests/unit/test_decoding_properties.py); the drill checks that the running pipeline loses,
invents and repeats nothing, and still scores a known-good event at the end."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fuzz_corpus import corpus
from tests.stack import CONTRACT, Stack, sale, scrape
from trustscore_stream.events.deadletter import raw_fields
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.processes import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.drill]

SEED = 20261123
RECORDS = 300
# Bad records close to the broker's 1 MiB message limit, whose dead letter (the raw bytes as
# escaped JSON text, or base64) is bigger than the record itself.
NEAR_LIMIT = [
    ("near the limit: quotes", b'"' * 700_000),
    ("near the limit: control bytes", b"\x01" * 700_000),
    ("near the limit: not UTF-8", b"\xff" * 900_000),
]


def total(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def by_label(metrics: dict[str, float], name: str, label: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for key, value in metrics.items():
        if key.startswith(name + "{") and value:
            labels = dict(part.split("=", 1) for part in key[len(name) + 1 : -1].split(","))
            out[labels[label].strip('"')] += int(value)
    return out


def kind(what: str) -> str:
    if what.startswith("batch of") and what != "batch of 1001":
        return "batch"
    return what.split(":")[0]


def raw_of(letter: dict[str, Any]) -> bytes:
    raw = str(letter["raw"])
    if letter.get("raw_encoding") == "base64":
        return base64.b64decode(raw)
    return raw.encode()


async def wait_for(worker: WorkerProcess, what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    metrics: dict[str, float] = {}
    while time.monotonic() < deadline:
        assert worker.alive(), f"worker died: {worker.log_tail()}"
        metrics = scrape(worker)
        if check(metrics):
            return metrics
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; metrics: {metrics}")


async def test_fuzzed_records_are_processed_or_dead_lettered(stack: Stack) -> None:
    records = corpus(SEED, RECORDS) + NEAR_LIMIT
    accepted: list[str] = []
    letters: Counter[tuple[str, bytes]] = Counter()
    items = 0
    for _, raw in records:
        decoded = decode_record(raw)
        accepted += [e.event_id for e in decoded.envelopes]
        letters.update((r.reason, r.raw) for r in decoded.rejections)
        items += len(decoded.envelopes) + len(decoded.rejections)
    distinct = set(accepted)
    reasons = Counter(reason for reason, _ in letters.elements())

    worker = stack.start_worker("fuzz")
    await worker.wait_ready()
    await stack.produce(raw for _, raw in records)

    def accounted(m: dict[str, float]) -> bool:
        got = total(m, "trustscore_events_received_total")
        return got + total(m, "trustscore_dead_lettered_total") >= items

    metrics = await wait_for(worker, "every envelope accounted for", accounted)
    lanes = await stack.lane_events(until=len(distinct), timeout=60)
    routed = [str(e["event_id"]) for events in lanes.values() for e in events]
    dlq = await stack.consume("trustscore-events-dlq", until=letters.total(), settle=1.0)
    dead = [orjson.loads(r.value) for r in dlq if r.value is not None]
    processed = await wait_for(
        worker,
        "every routed event processed",
        lambda m: total(m, "trustscore_lane_events_processed_total") >= len(distinct),
    )
    metrics = scrape(worker)

    counts = {
        "records sent": len(records),
        "batch records": sum(1 for what, _ in records if what.startswith(("batch", "empty"))),
        "envelopes (items)": items,
        "accepted": len(accepted),
        "distinct accepted ids": len(distinct),
        "duplicates dropped": int(total(metrics, "trustscore_duplicates_dropped_total")),
        "dead-lettered": letters.total(),
        "truncated letters": sum(1 for d in dead if d.get("raw_truncated")),
        "by reason": dict(sorted(reasons.items())),
        "what was sent": dict(Counter(kind(what) for what, _ in records).most_common()),
    }
    print(f"\nfuzz drill (seed {SEED}): {orjson.dumps(counts).decode()}")

    # Nothing lost, nothing invented, nothing twice.
    assert total(metrics, "trustscore_records_received_total") == len(records)
    assert total(metrics, "trustscore_events_received_total") == len(accepted)
    assert by_label(metrics, "trustscore_dead_lettered_total", "reason") == reasons
    assert "internal_error" not in reasons
    assert sorted(routed) == sorted(distinct)  # each distinct id on a lane exactly once
    assert counts["duplicates dropped"] == len(accepted) - len(distinct)
    # The original bytes are in the letters (a record too big for that even as base64 keeps a
    # prefix, says so, and stays whole in the input topic at the letter's partition/offset).
    kept = Counter((d["reason"], raw_of(d), d.get("raw_size")) for d in dead)
    assert kept == Counter(
        (reason, raw_of(raw_fields(raw)), raw_fields(raw).get("raw_size"))
        for reason, raw in letters.elements()
    )
    assert all(d["topic"] == stack.topic("trustscore-events") for d in dead)
    assert len({(d["partition"], d["offset"], d.get("index")) for d in dead}) == len(dead)
    assert total(processed, "trustscore_lane_events_processed_total") == len(distinct)

    # Still alive and scoring.
    assert worker.alive()
    await stack.produce([sale("after-fuzz", token=999_001)])
    entity = f"nft:eth:{CONTRACT}:999001"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{worker.url}/api/v1/scores/{entity}") as answer:
                if answer.status == 200:
                    body = await answer.json()
                    break
            assert time.monotonic() < deadline, "the known-good event was not scored"
            await asyncio.sleep(0.3)
    assert body["version"] >= 1 and 0 <= body["score"] <= 100
