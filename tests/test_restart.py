"""Crash drills on the embedded broker: kill -9 twice in a row, restart on the old local
state and on a fresh data dir; the dedup table must restore exactly and a duplicate that
arrives after the crash must still be recognised."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.stack import Stack, sale, scrape
from trustscore_stream.processes import WorkerProcess

pytestmark = pytest.mark.integration

BATCHES = 20
PER_BATCH = 100


def batch(start: int, count: int) -> list[dict[str, object]]:
    return [sale(f"ev-{i}", token=i % 500) for i in range(start, start + count)]


async def changelog_ids(stack: Stack, expected: int, timeout: float = 30.0) -> set[str]:
    """Event ids persisted in the dedup table's changelog (what a restore will see)."""
    consumer = AIOKafkaConsumer(
        f"{stack.app_id}-dedup-changelog",
        bootstrap_servers=stack.broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    ids: set[str] = set()
    try:
        deadline = time.monotonic() + timeout
        while len(ids) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    # A batched write must land in its source partition's changelog.
                    assert record.key is not None
                    assert int(record.key.split(b":")[0]) == record.partition
                    if record.value is not None:
                        ids.update(orjson.loads(record.value))
    finally:
        await consumer.stop()
    return ids


def lane_ids(lanes: dict[str, list[dict[str, object]]]) -> list[str]:
    return [str(item["event_id"]) for items in lanes.values() for item in items]


async def dedup_size(worker: WorkerProcess, expected: float, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    value = -1.0
    while time.monotonic() < deadline:
        value = scrape(worker).get("trustscore_dedup_ids", -1.0)
        if value == expected:
            return value
        await asyncio.sleep(0.25)
    return value


async def test_duplicates_after_kill9_and_restart(stack: Stack) -> None:
    first = stack.start_worker("a", data_dir=stack.root / "state-a")
    await first.wait_ready()
    await stack.produce([batch(i * PER_BATCH, PER_BATCH) for i in range(BATCHES)])
    total = BATCHES * PER_BATCH
    lanes = await stack.lane_events(until=total, timeout=60)
    assert sorted(lane_ids(lanes)) == sorted(f"ev-{i}" for i in range(total))
    assert len(await changelog_ids(stack, total)) == total

    first.kill()  # crash 1: no shutdown, no final commit
    # Restart on the same local state: the path that broke on the broker's end-offset bug.
    second = stack.start_worker("b", data_dir=stack.root / "state-a")
    await second.wait_ready()
    assert await dedup_size(second, total) == total  # restored exactly
    await stack.produce([batch(0, PER_BATCH), batch(total, 10)])  # 100 repeats + 10 new
    lanes = await stack.lane_events(until=total + 10, timeout=60)
    ids = lane_ids(lanes)
    assert len(ids) == len(set(ids)) == total + 10
    assert len(await changelog_ids(stack, total + 10)) == total + 10

    second.kill()  # crash 2, right after the first
    third = stack.start_worker("c", data_dir=stack.root / "state-fresh")  # restore from changelog
    await third.wait_ready()
    assert await dedup_size(third, total + 10) == total + 10
    await stack.produce([batch(total - 50, 70)])  # 60 repeats across both crashes + 10 new
    lanes = await stack.lane_events(until=total + 20, timeout=60)
    ids = lane_ids(lanes)
    assert len(ids) == len(set(ids)) == total + 20
    assert scrape(third)["trustscore_duplicates_dropped_total"] >= 60


def spread(start: int, count: int) -> list[dict[str, object]]:
    """Events over 16 collections, so they land on every partition."""
    return [
        sale(f"ev-{i}", token=i, contract=f"0x{i % 16:02x}" + "ab" * 19)
        for i in range(start, start + count)
    ]


async def test_duplicates_after_a_rebalance(stack: Stack) -> None:
    first = stack.start_worker("a")
    await first.wait_ready()
    await stack.produce([spread(0, 500)])
    lanes = await stack.lane_events(until=500, timeout=60)
    assert len(lane_ids(lanes)) == 500
    assert len(await changelog_ids(stack, 500)) == 500
    # A second worker joins: about half of the partitions, and their dedup memory, move.
    second = stack.start_worker("b")
    await second.wait_ready()
    await asyncio.sleep(2.0)  # the first worker goes through the rebalance too
    await asyncio.gather(first.wait_ready(), second.wait_ready())
    await stack.produce([spread(0, 500), spread(500, 10)])  # all repeated + 10 new
    lanes = await stack.lane_events(until=510, timeout=60)
    ids = lane_ids(lanes)
    assert len(ids) == len(set(ids)) == 510
    owned = [scrape(w).get("trustscore_dedup_ids", 0.0) for w in (first, second)]
    assert all(n > 0 for n in owned)  # both workers hold part of the memory
