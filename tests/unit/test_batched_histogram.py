"""The batched histogram exposes exactly what prometheus_client's own histogram would for the
same observations, from several threads too; the lag and table-size readers skip what they
cannot know."""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trustscore_stream.batched_histogram import BatchedHistogram
from trustscore_stream.worker_gauges import FAUST_OFFSET_KEY, consumer_lag, table_keys

BUCKETS = (0.05, 0.5, 1, 60, 3600)
VALUES = [0.0, 0.01, 0.05, 0.0500001, 0.5, 0.7, 1.0, 59.9, 60.0, 61.0, 3600.0, 7200.0]


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name == name:
            for s in family.samples:
                if not s.name.endswith("_created"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_same_exposition_as_prometheus_client_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchedHistogram("h_seconds", "h", ["lane"], buckets=BUCKETS, registry=ours)
    reference = Histogram("h_seconds", "h", ["lane"], buckets=BUCKETS, registry=theirs)
    tally = batched.tally()
    for value in VALUES:
        tally.add(value)
        reference.labels("normal").observe(value)
    batched.record(tally, "normal")
    assert samples(ours, "h_seconds") == samples(theirs, "h_seconds")
    assert len(tally) == len(VALUES)


def test_initial_series_nan_and_negative_values() -> None:
    registry = CollectorRegistry()
    batched = BatchedHistogram(
        "x_seconds", "x", ["lane"], buckets=BUCKETS, registry=registry, initial=[("bulk",)]
    )
    assert samples(registry, "x_seconds")[("x_seconds_count", (("lane", "bulk"),))] == 0
    tally = batched.tally()
    tally.add(math.nan)
    tally.add(-3.0)  # the clock stepped back: counted as no wait at all
    batched.record(tally, "bulk")
    got = samples(registry, "x_seconds")
    assert got[("x_seconds_bucket", (("lane", "bulk"), ("le", "0.05")))] == 2
    assert got[("x_seconds_sum", (("lane", "bulk"),))] == 0


def test_records_from_many_threads_add_up() -> None:
    registry = CollectorRegistry()
    batched = BatchedHistogram("t_seconds", "t", buckets=BUCKETS, registry=registry)

    def work() -> None:
        for _ in range(500):
            tally = batched.tally()
            for value in (0.01, 2.0, 9000.0):
                tally.add(value)
            batched.record(tally)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = samples(registry, "t_seconds")
    assert got[("t_seconds_count", ())] == 8 * 500 * 3
    assert got[("t_seconds_bucket", (("le", "60.0"),))] == 8 * 500 * 2
    assert got[("t_seconds_sum", ())] == pytest.approx(8 * 500 * (0.01 + 2.0 + 9000.0))


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class FakeConsumer:
    highwaters: dict[TP, int | None]
    positions: dict[TP, int | None]
    slow: set[TP] = field(default_factory=set)

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: TP) -> int | None:
        if tp in self.slow:
            await asyncio.sleep(30)  # a position that is not known yet
        return self.positions[tp]


async def test_consumer_lag_skips_changelogs_and_unknowns() -> None:
    lane, ingest, fresh, moving = TP("lane", 0), TP("ingest", 3), TP("lane", 1), TP("lane", 2)
    changelog = TP("app-entity-state-changelog", 0)
    consumer = FakeConsumer(
        highwaters={lane: 120, ingest: 7, fresh: None, moving: 9, changelog: 500},
        positions={lane: 100, ingest: 9, fresh: 0, moving: 0, changelog: 0},
        slow={moving},
    )
    assert await consumer_lag(consumer) == {("lane", 0): 20, ("ingest", 3): 0}


class FakeDb:
    def __init__(self, estimate: int | None, has_offset: bool) -> None:
        self.estimate, self.has_offset = estimate, has_offset

    def property_int_value(self, name: str) -> int | None:
        assert name == "rocksdb.estimate-num-keys"
        return self.estimate

    def get(self, key: bytes) -> bytes | None:
        return b"41" if key == FAUST_OFFSET_KEY and self.has_offset else None


class FakeStore:
    def __init__(self, dbs: dict[int, FakeDb]) -> None:
        self._dbs = dbs


def test_table_keys_from_rocksdb_estimates_without_faust_offsets() -> None:
    store = FakeStore({0: FakeDb(11, True), 3: FakeDb(5, False), 5: FakeDb(None, False)})
    assert table_keys(store) == 15
    assert table_keys(object()) is None  # not a RocksDB store
