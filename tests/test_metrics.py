"""GET /metrics against the real broker and a real worker: a known mix of valid, invalid and
repeated events goes in, and the counters, latency histograms and gauges must say exactly
what was sent and what the worker did with it."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import CONTRACT, Stack, fraud, sale, social
from trustscore_stream.processes import WorkerProcess

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def read_metrics(worker: WorkerProcess) -> Samples:
    """Every sample of the worker's /metrics, parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of `name` over the series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {ls: v for (n, ls), v in samples.items() if n == name}


async def wait_for(
    worker: WorkerProcess, done: Callable[[Samples], bool], what: str, timeout: float = 60.0
) -> Samples:
    deadline = time.monotonic() + timeout
    samples = await asyncio.to_thread(read_metrics, worker)
    while not done(samples):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log: {worker.log_tail()}")
        await asyncio.sleep(0.5)
        samples = await asyncio.to_thread(read_metrics, worker)
    return samples


SALES = 12  # normal lane, sale/marketplace, on 12 tokens of one collection
SOCIAL = 3  # bulk lane, social_signal/social, on three collections
FRAUD = 1  # critical lane, fraud_finding/fraud
VALID = SALES + SOCIAL + FRAUD
REPEATED = 5  # sales sent again with the same event_id
LATE_S = 900


def other_contract(i: int) -> str:
    return "0x" + f"{i:02x}" * 20


async def test_counters_histograms_and_gauges_match_what_was_sent(stack: Stack) -> None:
    worker = stack.start_worker("w1")
    await worker.wait_ready()

    valid: list[dict[str, Any]] = [sale(f"s{i}", token=i + 1) for i in range(SALES)]
    valid += [social(f"c{i}", contract=other_contract(i + 1)) for i in range(SOCIAL)]
    # One event that happened a quarter of an hour before it reached us (a late source):
    # latency from event time must count from its occurred_at, not from its arrival.
    late = datetime.now(UTC) - timedelta(seconds=LATE_S)
    valid[-1]["occurred_at"] = late.isoformat().replace("+00:00", "Z")
    valid += [fraud("f1")]
    repeats = [sale(f"s{i}", token=i + 1) for i in range(REPEATED)]
    invalid: list[bytes | dict[str, Any] | list[Any]] = [
        b"not json",
        b"{broken",
        {**sale("u1"), "type": "teleport"},
        [{"event_id": "x1"}, {"event_id": "x2"}],  # a batch of two: missing_field twice
        [sale("w1", token=99, price=1.5)],  # money as a float
        {**sale("v1"), "contract": "0x123"},
    ]
    expected_dlq = {
        "invalid_json": 2,
        "unknown_type": 1,
        "missing_field": 2,
        "wrong_type": 1,
        "invalid_value": 1,
    }
    # Valid events first, as batch records and single records, then the rest mixed.
    await stack.produce([valid[:8], *valid[8:], *invalid[:3], repeats, *invalid[3:]])

    scored = "trustscore_event_to_scored_seconds_count"
    samples = await wait_for(
        worker,
        lambda s: (
            total(s, scored) >= VALID
            and total(s, "trustscore_dead_lettered_total") >= sum(expected_dlq.values())
            and total(s, "trustscore_duplicates_dropped_total") >= REPEATED
        ),
        "every event processed",
    )

    # Ingest: every valid envelope (repeats included: dedup comes after ingest).
    received = series(samples, "trustscore_events_received_total")
    assert received == {
        frozenset({("type", "sale"), ("source", "marketplace")}): SALES + REPEATED,
        frozenset({("type", "social_signal"), ("source", "social")}): SOCIAL,
        frozenset({("type", "fraud_finding"), ("source", "fraud")}): FRAUD,
    }
    dead = {
        dict(ls)["reason"]: v for ls, v in series(samples, "trustscore_dead_lettered_total").items()
    }
    assert {r: n for r, n in dead.items() if n} == expected_dlq
    assert total(samples, "trustscore_duplicates_dropped_total") == REPEATED

    # Applied by scoring: each valid event once, in its lane.
    for name in (scored, "trustscore_ingest_to_scored_seconds_count"):
        assert total(samples, name, lane="normal") == SALES, name
        assert total(samples, name, lane="bulk") == SOCIAL, name
        assert total(samples, name, lane="critical") == FRAUD, name
    assert total(samples, "trustscore_lane_wait_seconds_count") == VALID
    # From event time: the late event lands between 600 s and 1800 s, the others in a minute.
    bucket = "trustscore_event_to_scored_seconds_bucket"
    assert total(samples, bucket, le="60.0") == VALID - 1
    assert total(samples, bucket, le="600.0") == VALID - 1
    assert total(samples, bucket, lane="bulk", le="1800.0") == SOCIAL
    assert total(samples, "trustscore_event_to_scored_seconds_sum") > LATE_S
    # From ingest: all of them within a minute.
    assert total(samples, "trustscore_ingest_to_scored_seconds_bucket", le="60.0") == VALID
    assert total(samples, "trustscore_ingest_to_scored_seconds_sum") < VALID * 60

    # Publication: one observation per delta the broker acknowledged.
    published = "trustscore_score_changes_published_total"
    samples = await wait_for(
        worker,
        lambda s: (
            total(s, published) > 0
            and total(s, "trustscore_scored_to_published_seconds_count") == total(s, published)
        ),
        "every published delta observed",
    )
    deltas = total(samples, published)
    assert total(samples, "trustscore_scored_to_published_seconds_bucket", le="60.0") == deltas
    links = total(samples, "trustscore_links_total", outcome="applied")
    from_event = total(samples, "trustscore_event_to_published_seconds_count")
    if links == 0:
        # No cross-partition link changed anything: every delta came from an event here.
        assert from_event == deltas
    else:
        assert 0 < from_event <= deltas
    bucket = "trustscore_event_to_published_seconds_bucket"
    assert total(samples, bucket, le="3600.0") == from_event
    assert total(samples, bucket, le="60.0") >= from_event - 1  # all but the late event's

    # Lag and queue gauges exist for what this worker consumes, and drain to 0 when idle.
    events_topic = stack.topic("trustscore-events")
    lanes_topic = stack.topic("trustscore-lane-normal")

    def idle(s: Samples) -> bool:
        lag = series(s, "trustscore_consumer_lag_records")
        topics = {dict(ls)["topic"] for ls in lag}
        return (
            {events_topic, lanes_topic, stack.topic("trustscore-ingest")} <= topics
            and all(v == 0 for v in lag.values())
            and all(v == 0 for v in series(s, "trustscore_lane_queue_depth").values())
        )

    samples = await wait_for(worker, idle, "lag gauges at 0")
    lag = series(samples, "trustscore_consumer_lag_records")
    assert {dict(ls)["partition"] for ls in lag if dict(ls)["topic"] == events_topic} == {
        str(p) for p in range(stack.partitions)
    }
    assert not any(dict(ls)["topic"].endswith("-changelog") for ls in lag)
    assert {dict(ls)["lane"] for ls in series(samples, "trustscore_lane_queue_depth")} == {
        "critical",
        "normal",
        "bulk",
    }

    # Table sizes: the route dedup memory and the scoring state hold keys now.
    samples = await wait_for(
        worker,
        lambda s: (
            total(s, "trustscore_table_keys", table="dedup") > 0
            and total(s, "trustscore_table_keys", table="entity-state") > 0
        ),
        "table key gauges",
    )
    assert {dict(ls)["table"] for ls in series(samples, "trustscore_table_keys")} >= {
        "dedup",
        "entity-state",
        "watched",
    }

    # SSE: a stream opened and closed by its client is counted as such.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{worker.url}/api/v1/stream", params={"entity": f"collection:eth:{CONTRACT}"}
        ) as answer,
    ):
        assert answer.status == 200  # headers come once the stream is prepared
    samples = await wait_for(
        worker,
        lambda s: total(s, "trustscore_sse_disconnects_total", reason="client") == 1,
        "the client's disconnect counted",
    )
    assert total(samples, "trustscore_sse_connections_total") == 1
    assert total(samples, "trustscore_sse_clients") == 0
