"""Crash drill for scoring state: kill -9 twice while events stream in, then a worker on a
fresh data dir. The entity state a restore sees (read straight from the changelog) must
count every event exactly once: mints per collection are a running count, so a lost event
or a double-applied one shows as a wrong number."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tests.stack import CONTRACT, WALLET_A, Stack, now_rfc3339, scrape
from trustscore_stream.processes import WorkerProcess
from trustscore_stream.scoring import CollectionState
from trustscore_stream.tables.state_buckets import COMMIT_PREFIX, PartitionState

pytestmark = pytest.mark.integration

OTHER = "0x" + "5e" * 20
BATCHES = 40
PER_BATCH = 50
BUCKETS = 32  # the default TRUSTSCORE_STATE_BUCKETS


def mint(i: int) -> dict[str, Any]:
    return {
        "event_id": f"mint-{i}",
        "type": "mint",
        "source": "chain",
        "occurred_at": now_rfc3339(),
        "schema_version": 1,
        "contract": CONTRACT if i % 2 else OTHER,
        "token_id": str(i),
        "payload": {"to": WALLET_A},
    }


def batch(n: int) -> list[dict[str, Any]]:
    return [mint(i) for i in range(n * PER_BATCH, (n + 1) * PER_BATCH)]


async def restored_mints(stack: Stack) -> dict[str, int]:
    """Mints per collection as a worker restoring the changelog now would see them."""
    consumer = AIOKafkaConsumer(
        f"{stack.app_id}-entity-state-changelog",
        bootstrap_servers=stack.broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    tables: dict[int, dict[bytes, bytes]] = defaultdict(dict)
    try:
        while True:
            got = await consumer.getmany(timeout_ms=500)
            if not got:
                break
            for records in got.values():
                for record in records:
                    assert record.key is not None
                    # Every write lands in the changelog partition its key names.
                    assert int(record.key.split(b":")[1]) == record.partition
                    if record.value is None:
                        tables[record.partition].pop(record.key, None)
                    else:
                        tables[record.partition][record.key] = record.value
    finally:
        await consumer.stop()
    out: dict[str, int] = {}
    for partition, table in tables.items():
        if f"{COMMIT_PREFIX}:{partition}".encode() not in table:
            continue
        state = PartitionState(partition, BUCKETS, table.get)
        for contract in (CONTRACT, OTHER):
            stored = state.get(f"collection:eth:{contract}")
            if stored is not None:
                assert isinstance(stored.state, CollectionState)
                out[contract] = stored.state.mints
    return out


async def checkpoints(worker: WorkerProcess, at_least: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scrape(worker).get("trustscore_checkpoints_total", 0.0) >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} checkpoints")


async def test_scoring_state_is_exact_after_two_kill9(stack: Stack) -> None:
    async def stream_in() -> None:
        for n in range(BATCHES):
            await stack.produce([batch(n)])
            await asyncio.sleep(0.25)

    first = stack.start_worker("a", data_dir=stack.root / "state-a")
    await first.wait_ready()
    producing = asyncio.create_task(stream_in())
    await checkpoints(first, 2)
    first.kill()  # crash 1, mid-stream
    second = stack.start_worker("b", data_dir=stack.root / "state-a")
    await second.wait_ready()
    await checkpoints(second, 1)
    second.kill()  # crash 2, right after the first
    await producing
    third = stack.start_worker("c", data_dir=stack.root / "state-fresh")
    await third.wait_ready()
    await stack.produce([batch(0), batch(BATCHES - 1)])  # repeats: must not count

    total = BATCHES * PER_BATCH
    expected = {CONTRACT: total // 2, OTHER: total // 2}
    deadline = time.monotonic() + 90
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        seen = await restored_mints(stack)
        assert all(seen.get(c, 0) <= n for c, n in expected.items()), f"double-counted: {seen}"
        if seen == expected:
            break
        await asyncio.sleep(0.5)
    assert seen == expected
    await asyncio.sleep(2.0)  # nothing more may arrive
    assert await restored_mints(stack) == expected
    assert scrape(third)["trustscore_duplicates_dropped_total"] >= PER_BATCH
