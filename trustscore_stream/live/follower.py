"""The broadcast follower: every worker reads every partition of the deltas and
notifications topics (a plain consumer with no group, outside the app's partition split)
and dispatches each record to its own hub. So a change scored on worker A reaches a client
connected to worker B. At start it reads back the replay window from the broker, so a
client that reconnects to a fresh worker can still resume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from trustscore_stream.embedded import bootstrap_from_url
from trustscore_stream.live.channels import score_channels, user_channel
from trustscore_stream.live.frames import single_line
from trustscore_stream.live.hub import Hub
from trustscore_stream.metrics import Metrics

log = logging.getLogger(__name__)

SCORE_EVENT = "score"
NOTIFICATION_EVENT = "notification"
PACE_MAX_S = 0.05
PACE_STEP_S = 0.002


class BroadcastFollower(Service):
    def __init__(
        self,
        broker_url: str,
        deltas_topic: str,
        notifications_topic: str,
        partitions: int,
        hub: Hub,
        metrics: Metrics,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bootstrap = bootstrap_from_url(broker_url)
        self._partitions = partitions
        self._deltas = deltas_topic
        self._notifications = notifications_topic
        self.hub = hub
        self.metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None
        # slot = index in the position vector: deltas partitions first, then notifications
        self._slots = [TopicPartition(deltas_topic, p) for p in range(partitions)] + [
            TopicPartition(notifications_topic, p) for p in range(partitions)
        ]
        self._slot_of = {tp: slot for slot, tp in enumerate(self._slots)}

    async def on_start(self) -> None:
        self.add_future(self._follow())

    async def on_stop(self) -> None:
        # Open streams would otherwise keep the web server (and the worker) from stopping.
        self.hub.close_all("shutdown")
        if self._consumer is not None:
            await self._consumer.stop()

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,  # live latency: don't let the broker hold a fetch long
        )
        await consumer.start()
        consumer.assign(self._slots)
        starts = await self._replay_window_start(consumer)
        for tp in self._slots:
            consumer.seek(tp, starts[tp])
        self.hub.start_at(starts[tp] for tp in self._slots)
        return consumer

    async def _replay_window_start(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """The first offset of each partition inside the replay window (by record time)."""
        ends: dict[TopicPartition, int] = await consumer.end_offsets(self._slots)
        since_ms = int((time.time() - self.hub.limits.replay_s) * 1000)
        try:
            found = await consumer.offsets_for_times({tp: since_ms for tp in self._slots})
        except (KafkaError, ValueError) as exc:
            log.warning("offsets_for_times failed (%s): following from the end", exc)
            return ends
        return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in self._slots}

    async def _follow(self) -> None:
        consumer = self._consumer = await self._start_consumer()
        hub, slot_of, metrics = self.hub, self._slot_of, self.metrics
        partitions = self._partitions
        # At most a quarter of a client's queue per round, and before the next round the
        # woken streams get to write (and, while some are half full, up to PACE_MAX_S to
        # drain): a burst of deltas is paced to what reading clients take, so only a client
        # that stops reading overflows (a stuck one delays the others by at most
        # PACE_MAX_S per round until it is cut off).
        per_fetch = max(1, min(500, hub.limits.queue_frames // 4))
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=per_fetch)
            except KafkaError as exc:  # the consumer reconnects by itself; don't spin
                log.warning("broadcast fetch failed (%s); retrying", exc)
                await self.sleep(1.0)
                continue
            for tp, records in batches.items():
                slot = slot_of[tp]
                is_score = slot < partitions
                for record in records:
                    routed = _route(record.key, record.value, is_score)
                    if routed is None:
                        metrics.sse_skipped.inc()
                        continue
                    channels, data = routed
                    hub.dispatch(
                        slot,
                        record.offset,
                        channels,
                        SCORE_EVENT if is_score else NOTIFICATION_EVENT,
                        data,
                    )
                    # After the dispatch: the lag includes queueing for the streams.
                    metrics.sse_dispatch_lag.observe(
                        max(0.0, time.time() - record.timestamp / 1000)
                    )
            hub.evict()
            if not batches:
                continue
            await asyncio.sleep(0)
            until = loop.time() + PACE_MAX_S
            while hub.backlogged() and loop.time() < until:  # noqa: ASYNC110 (bounded poll)
                await asyncio.sleep(PACE_STEP_S)


def _route(
    key: bytes | None, value: bytes | None, is_score: bool
) -> tuple[tuple[str, ...], bytes] | None:
    """The channels and the one-line data of a record; None for one we cannot use."""
    if value is None:
        return None
    data = single_line(value)
    if key is None:
        # CONTRACT §6 keys both topics; read the id from the value of a record that isn't
        try:
            body = orjson.loads(data)
            key = str(body["entity"] if is_score else body["user"]).encode()
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
    try:
        name = key.decode()
    except UnicodeDecodeError:
        return None
    return (score_channels(name) if is_score else (user_channel(name),)), data
