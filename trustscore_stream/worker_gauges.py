"""Gauges read off the consumers and tables every few seconds, not on the hot path: consumer
lag per topic partition and keys per changelog table.

Lag is the high watermark minus the consumer's position, both already known to the consumer
from its fetches (aiokafka keeps the high watermark of every fetch response): no request to
the broker. Tables are sized from RocksDB's own key estimate, which costs no scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from mode import Service

from trustscore_stream.metrics import Metrics

log = logging.getLogger(__name__)

REFRESH_S = 5.0
POSITION_TIMEOUT_S = 1.0
# A table's changelog is written by its active owner and read only for recovery and by
# standbys: its lag says nothing about the work waiting for this worker.
CHANGELOG_SUFFIX = "-changelog"
FAUST_OFFSET_KEY = b"__faust\0offset__"  # where Faust keeps each partition's restored offset


class LagSource(Protocol):
    """What both Faust's consumer and aiokafka's offer."""

    def assignment(self) -> Iterable[Any]: ...

    def highwater(self, tp: Any) -> int | None: ...

    def position(self, tp: Any) -> Awaitable[int | None]: ...


async def consumer_lag(consumer: LagSource) -> dict[tuple[str, int], int]:
    """Records not fetched yet per assigned (topic, partition), changelogs excluded. A
    partition whose high watermark or position is not known yet (just assigned, or moving
    away in a rebalance) is left out until the next refresh."""
    lag: dict[tuple[str, int], int] = {}
    try:
        assigned = list(consumer.assignment())
    except Exception:  # (not started yet, or restarting)
        return lag
    for tp in assigned:
        if tp.topic.endswith(CHANGELOG_SUFFIX):
            continue
        try:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_S)
        except Exception:  # (not assigned any more, no position yet, stopping)
            continue
        if position is not None:
            lag[(tp.topic, tp.partition)] = max(0, int(highwater) - int(position))
    return lag


def table_keys(store: object) -> int | None:
    """Keys in a Faust RocksDB table store's open partition databases (RocksDB's estimate,
    Faust's offset marker not counted); None for a store that is not RocksDB."""
    dbs = getattr(store, "_dbs", None)  # faust.stores.rocksdb.Store: partition -> database
    if not isinstance(dbs, Mapping):
        return None
    total = 0
    for db in list(dbs.values()):
        estimate = db.property_int_value("rocksdb.estimate-num-keys") or 0
        if estimate and db.get(FAUST_OFFSET_KEY) is not None:
            estimate -= 1
        total += max(0, estimate)
    return total


class WorkerGauges(Service):
    """Refreshes the lag and table gauges every REFRESH_S seconds. Runs on the event loop,
    like the scrape that reads them: the gauges never see a half-done refresh."""

    def __init__(
        self,
        metrics: Metrics,
        lag_sources: Callable[[], list[LagSource]],
        tables: Callable[[], Iterable[tuple[str, object]]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self._lag_sources = lag_sources
        self._tables = tables
        self._lag_labels: set[tuple[str, str]] = set()

    @Service.timer(REFRESH_S)
    async def _refresh_periodically(self) -> None:
        try:
            await self.refresh()
        except Exception:  # a timer that raises stops the worker; a gauge is not worth that
            log.exception("refreshing the lag and table gauges failed")

    async def refresh(self) -> None:
        lag: dict[tuple[str, int], int] = {}
        for source in self._lag_sources():
            lag.update(await consumer_lag(source))
        labels = {(topic, str(partition)): value for (topic, partition), value in lag.items()}
        for gone in self._lag_labels - labels.keys():
            self.metrics.consumer_lag.remove(*gone)  # moved to another worker
        for label, value in labels.items():
            self.metrics.consumer_lag.labels(*label).set(value)
        self._lag_labels = set(labels)
        for name, store in self._tables():
            keys = table_keys(store)
            if keys is not None:
                self.metrics.table_keys.labels(name).set(keys)
