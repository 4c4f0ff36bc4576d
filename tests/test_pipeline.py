"""The ingestion pipeline against the real embedded broker and a real worker process:
an outside producer (plain aiokafka) sends valid, invalid and duplicate events; we read
what lands on the lanes and in the DLQ, record by record."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
import pytest

from tests.stack import CONTRACT, Stack, fraud, sale, scrape, social
from trustscore_stream.topics_admin import committed_offsets, end_offsets

pytestmark = pytest.mark.integration


async def test_valid_invalid_and_duplicate_events(stack: Stack) -> None:
    worker = stack.start_worker("w1")
    await worker.wait_ready()
    too_large = sale("big", payload_padding="x" * (65 * 1024))
    await stack.produce(
        [
            sale("e1"),
            b"not json",
            [sale("e2", token=2), {"event_id": "x"}, sale("e3", token=3), sale("e1")],
            {**sale("u1"), "type": "teleport"},
            too_large,
            sale("e2", token=2),
            b"\xff\xfe\x00garbage",
            fraud("e4"),
            social("e5"),
            [sale("e6", token=6, price=1.5)],  # money as a float: wrong type
            {**sale("e7"), "occurred_at": "2026-11-22T10:15:02"},  # no zone
            {**sale("e8"), "contract": "0x123"},
            [],
        ]
    )
    lanes = await stack.lane_events(until=5)
    ids = {lane: [item["event_id"] for item in items] for lane, items in lanes.items()}
    assert sorted(ids["normal"]) == ["e1", "e2", "e3"]
    assert ids["critical"] == ["e4"]
    assert ids["bulk"] == ["e5"]
    first = next(i for i in lanes["normal"] if i["event_id"] == "e1")
    assert first["category"] == "trade"
    assert first["partition_key"] == f"collection:eth:{CONTRACT}"
    assert first["envelope"]["contract"] == CONTRACT
    assert f"nft:eth:{CONTRACT}:1" in first["entities"]

    dlq = [
        orjson.loads(r.value)
        for r in await stack.consume("trustscore-events-dlq", until=9, settle=1.0)
    ]
    by_reason = sorted((d["reason"], d.get("index")) for d in dlq)
    assert by_reason == [
        ("empty_batch", None),
        ("invalid_encoding", None),
        ("invalid_json", None),
        ("invalid_value", None),  # e8: bad address
        ("invalid_value", None),  # e7: timestamp without zone
        ("missing_field", 1),
        ("too_large", None),
        ("unknown_type", None),
        ("wrong_type", 0),
    ]
    for record in dlq:
        assert record["topic"] == stack.topic("trustscore-events")
        assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
        assert record["detail"] and record["at"].endswith("Z")
    encoding = next(d for d in dlq if d["reason"] == "invalid_encoding")
    assert encoding["raw_encoding"] == "base64"
    assert base64.b64decode(encoding["raw"]) == b"\xff\xfe\x00garbage"
    missing = next(d for d in dlq if d["reason"] == "missing_field")
    assert orjson.loads(missing["raw"]) == {"event_id": "x"}
    assert "`type`" in missing["detail"]
    assert next(d for d in dlq if d["reason"] == "invalid_json")["raw"] == "not json"

    metrics = scrape(worker)
    assert metrics["trustscore_duplicates_dropped_total"] == 2
    assert metrics['trustscore_lane_events_processed_total{lane="normal"}'] == 3
    assert metrics['trustscore_lane_events_processed_total{lane="critical"}'] == 1


async def test_ingest_commits_what_it_delivered(stack: Stack) -> None:
    """The input topic's consumer commits a take only after its output is delivered, so
    once the worker is idle the ingest group's commits equal the input's end offsets, and a
    restarted worker ingests nothing again."""
    first = stack.start_worker("w1")
    await first.wait_ready()
    await stack.produce([sale(f"c{i}", token=i) for i in range(40)] + [b"not json"])
    await stack.lane_events(until=40)
    topic = stack.topic("trustscore-events")
    # Records were produced one per request: the broker's end offsets are exact.
    ends = await end_offsets(stack.broker.bootstrap, topic)
    expected = {p: (end or None) for p, end in ends.items()}  # never committed where empty
    assert sum(ends.values()) == 41
    group = f"{stack.app_id}-ingest"
    deadline = time.monotonic() + 20
    committed = await committed_offsets(stack.broker.bootstrap, group, topic, ends)
    while committed != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        committed = await committed_offsets(stack.broker.bootstrap, group, topic, ends)
    assert committed == expected
    received = scrape(first)['trustscore_records_received_total{shape="single"}']
    assert received == 41
    first.stop()
    second = stack.start_worker("w2")
    await second.wait_ready()
    await stack.produce([sale("c40", token=40)])
    await stack.lane_events(until=41)
    assert scrape(second)['trustscore_records_received_total{shape="single"}'] == 1
