"""How long a fetch may wait on the broker when there is nothing to read.

Faust builds its consumer with a fixed `fetch_max_wait_ms=1500`. On Kafka that only sets
how often an idle consumer asks again: a fetch is answered as soon as data arrives. The
embedded broker (Tansu 0.6.0) holds an empty fetch for about half its maximum wait and does
not answer early when data arrives (measured by `bench/sse.py`'s probe: a record produced
20 ms into a waiting fetch arrived after ~730 ms at 1,500 ms, ~7 ms at 50 ms), so every hop
of the pipeline added up to a second of latency. The app's consumers (Faust's, ingest's and
the live stream's) take their wait from `Settings.fetch_wait_ms` instead.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer


def use_fetch_wait(app: faust.App, fetch_wait_ms: int) -> None:
    """Make this app's Faust consumer wait at most `fetch_wait_ms` per fetch."""

    class Thread(AIOKafkaConsumerThread):  # type: ignore[misc]
        def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
            consumer: AIOKafkaConsumer = super()._create_worker_consumer(transport)
            # aiokafka reads this when the consumer starts (it builds its fetcher then).
            consumer._fetch_max_wait_ms = fetch_wait_ms
            return consumer

    class WaitingConsumer(Consumer):  # type: ignore[misc]
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return Thread(self, loop=self.loop, beacon=self.beacon)

    # Per app (its transport instance, created lazily: safe at import), not a change to
    # Faust's classes.
    app.transport.Consumer = WaitingConsumer  # type: ignore[misc]  # instance attribute
