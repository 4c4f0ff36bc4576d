"""`trustscore-watch` → the `watched` table: who is watched, so scoring knows whom to
rescore eagerly. Later features (subscriptions, dashboards) call `watch_record()` and send
the result; records must land on the entity's partition, which `watch_record` computes."""

from __future__ import annotations

import logging
from typing import Any

import faust
import msgspec
from faust.types import EventT, StreamT

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import Settings
from trustscore_stream.tables.partition_scope import partition_scope
from trustscore_stream.tables.watched import WatchIndex
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)


class WatchChange(msgspec.Struct):
    entity: str
    watchers: int  # +n to watch, -n to stop


_decoder = msgspec.json.Decoder(WatchChange)


def watch_record(entity: str, watchers: int, partitions: int) -> tuple[int, bytes]:
    """(partition, value) of a watch change, for `topics.watch.send(partition=…, value=…)`."""
    parsed = parse_entity_id(entity)
    key = parsed.collection or str(parsed)
    return partition_for(key, partitions), msgspec.json.encode(WatchChange(str(parsed), watchers))


class WatchStage:
    def __init__(self, settings: Settings, topics: Topics, index: WatchIndex) -> None:
        self.settings = settings
        self.topics = topics
        self.index = index

    def register(self, app: faust.App) -> None:
        self.app = app
        app.agent(self.topics.watch, name="watch", concurrency=1)(self.run)

    async def run(self, stream: StreamT[Any]) -> None:
        async for events in event_batches(stream, 500, self.settings.take_within_s):
            await fail_fast(self.app, self._apply(events))
            await ack_all(stream, events)

    async def _apply(self, events: list[EventT[bytes]]) -> None:
        for event in events:
            try:
                change = _decoder.decode(event.value)
                parse_entity_id(change.entity)
            except (msgspec.DecodeError, msgspec.ValidationError, InvalidEntityId) as exc:
                log.error("ignoring bad watch record: %s", exc)  # internal topic
                continue
            with partition_scope(event):
                self.index.change(change.entity, change.watchers)
