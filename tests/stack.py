"""Pytest plugin: a namespaced TrustScore stack (topics + worker processes) on the shared
session broker, and plain-aiokafka helpers that act as an outside producer/consumer."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from trustscore_stream.embedded import BrokerEndpoint, EmbeddedBroker, free_port
from trustscore_stream.events.routed import decode_batch, to_builtins
from trustscore_stream.processes import WorkerProcess, worker_env
from trustscore_stream.settings import load_settings
from trustscore_stream.topics import topic_specs
from trustscore_stream.topics_admin import ensure_topics

CONTRACT = "0x5af0d9827e0c53e4799bb226655a1de152a425a5"
WALLET_A = "0x8ba1f109551bd432803012645ac136ddd64dba72"
WALLET_B = "0x8ba1f109551bd432803012645ac136ddd64dba73"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def sale(event_id: str, token: int = 1, price: str = "1.25", **extra: Any) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "event_id": event_id,
        "type": "sale",
        "source": "marketplace",
        "occurred_at": now_rfc3339(),
        "schema_version": 1,
        "contract": CONTRACT,
        "token_id": str(token),
        "payload": {"seller": WALLET_A, "buyer": WALLET_B, "price": price, "currency": "ETH"},
    }
    envelope.update(extra)
    return envelope


def fraud(event_id: str, severity: str = "critical", confidence: float = 0.9) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "fraud_finding",
        "source": "fraud",
        "occurred_at": now_rfc3339(),
        "schema_version": 1,
        "payload": {
            "entity": f"collection:eth:{CONTRACT}",
            "finding": "rug_pull",
            "severity": severity,
            "confidence": confidence,
        },
    }


def social(event_id: str, contract: str = CONTRACT) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "social_signal",
        "source": "social",
        "occurred_at": now_rfc3339(),
        "schema_version": 1,
        "payload": {"entity": f"collection:eth:{contract}", "sentiment": 0.4, "mentions": 12},
    }


@dataclass
class Stack:
    broker: BrokerEndpoint
    root: Path
    prefix: str
    partitions: int = 8
    workers: list[WorkerProcess] = field(default_factory=list)
    _producer: AIOKafkaProducer | None = None

    @property
    def app_id(self) -> str:
        return f"{self.prefix}app"

    @property
    def embedded(self) -> bool:
        return isinstance(self.broker, EmbeddedBroker)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def env(self) -> dict[str, str]:
        return {
            "TRUSTSCORE_TOPIC_PREFIX": self.prefix,
            "TRUSTSCORE_APP_ID": self.app_id,
            "TRUSTSCORE_PARTITIONS": str(self.partitions),
        }

    async def create_topics(self) -> None:
        settings = load_settings({**self.env(), "TRUSTSCORE_BROKER": self.broker.url})
        await ensure_topics(self.broker.bootstrap, topic_specs(settings))

    def start_worker(
        self, name: str, data_dir: Path | None = None, extra: dict[str, str] | None = None
    ) -> WorkerProcess:
        data_dir = data_dir or (self.root / name)
        worker = WorkerProcess(
            worker_env(
                broker_url=self.broker.url,
                embedded=self.embedded,
                data_dir=data_dir,
                web_port=free_port(),
                extra={**self.env(), **(extra or {})},
            ),
            log_path=self.root / "logs" / f"{name}.log",
        )
        self.workers.append(worker.start())
        return worker

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            # One record per request, as the embedded broker's end-offset bug asks.
            self._producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap)
            await self._producer.start()
        return self._producer

    async def produce(
        self, values: Iterable[bytes | dict[str, Any] | list[Any]], key: bytes | None = None
    ) -> None:
        producer = await self.producer()
        for value in values:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(self.topic("trustscore-events"), raw, key=key)

    async def consume(
        self, *names: str, until: int, timeout: float = 30.0, settle: float = 0.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Read topics `names` from the start until `until` records, then `settle` seconds
        more (to catch extras that must not be there), or until `timeout`."""
        consumer = AIOKafkaConsumer(
            *(self.topic(name) for name in names),
            bootstrap_servers=self.broker.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[ConsumerRecord[bytes, bytes]] = []
        try:
            deadline = time.monotonic() + timeout
            settle_until: float | None = None
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=100)
                for recs in batch.values():
                    records.extend(recs)
                if len(records) >= until and settle_until is None:
                    settle_until = time.monotonic() + settle
                if settle_until is not None and time.monotonic() >= settle_until:
                    break
        finally:
            await consumer.stop()
        return records

    async def lane_events(
        self, until: int, timeout: float = 30.0, settle: float = 1.0
    ) -> dict[str, list[dict[str, Any]]]:
        """Routed events on each lane (flattened from the batch records), once at least
        `until` events are there and `settle` seconds passed without more being required."""
        out: dict[str, list[dict[str, Any]]] = {"critical": [], "normal": [], "bulk": []}
        lanes = [f"trustscore-lane-{lane}" for lane in out]
        deadline = time.monotonic() + timeout
        while True:
            records = await self.consume(*lanes, until=10**9, timeout=0.5)
            out = {lane: [] for lane in out}
            for record in records:
                assert record.value is not None
                lane = record.topic.rsplit("-", 1)[1]
                out[lane].extend(to_builtins(item) for item in decode_batch(record.value))
            total = sum(len(items) for items in out.values())
            if total >= until or time.monotonic() > deadline:
                break
        if settle:
            await asyncio.sleep(settle)
            return await self.lane_events(until, timeout=0, settle=0)
        return out

    async def stop(self) -> None:
        # Teardown: the test is over and its topics and state are thrown away, so kill -9
        # (a graceful Faust shutdown takes 2–5 s per worker, minutes over the suite).
        for worker in self.workers:
            worker.kill()
        if self._producer is not None:
            await self._producer.stop()


def scrape(worker: WorkerProcess) -> dict[str, float]:
    """The worker's /metrics as {"name{labels}": value}."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[re.sub(r"\s+", "", name)] = float(value)
    return values


@pytest.fixture
async def stack(broker: BrokerEndpoint, tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(broker, tmp_path, prefix=f"t{secrets.token_hex(4)}-")
    await s.create_topics()
    try:
        yield s
    finally:
        await s.stop()
