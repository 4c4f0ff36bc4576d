"""`trustscore-wallet-links` → the scoring engine: collection reports and wallet summaries
from other partitions (scoring/links.py), folded through the lane processor.

Why through the lanes: a received summary or report must be written atomically with the
entity state it changes and acknowledged only after that checkpoint, which is exactly what
the lane processor does for events. A link batch is queued as lane work: `critical` when it
carries a summary that flags owners (a fraud finding spreading), `normal` otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT, StreamT

from trustscore_stream.agents.batches import event_batches
from trustscore_stream.agents.corrupt_records import decode_take
from trustscore_stream.agents.lanes import InFlight, LaneStage
from trustscore_stream.agents.scoring import LinkRecord
from trustscore_stream.events.classification import Lane
from trustscore_stream.metrics import Metrics
from trustscore_stream.scoring.links import SummaryLink, decode_links, flags_owners
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)


def lane_of(records: list[LinkRecord]) -> Lane:
    urgent = any(
        isinstance(link, SummaryLink) and flags_owners(link.summary)
        for record in records
        for link in record.links
    )
    return "critical" if urgent else "normal"


class LinkStage:
    def __init__(self, settings: Settings, topics: Topics, metrics: Metrics, lanes: LaneStage):
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.lanes = lanes

    def register(self, app: faust.App) -> None:
        app.agent(self.topics.links, name="links", concurrency=1)(self.run)

    async def decode(self, events: list[EventT[bytes]]) -> list[LinkRecord]:
        """The link records of a take; a corrupt one is dead-lettered (internal topic)."""
        decoded = await decode_take(self.topics, self.metrics, events, decode_links, "link")
        return [LinkRecord(event, links) for event, links in decoded]

    async def run(self, stream: StreamT[Any]) -> None:
        inflight = InFlight()
        async for events in event_batches(stream, 16, self.settings.take_within_s):
            records = await self.decode(events)
            # Corrupt records are acknowledged with the rest, after the checkpoint.
            await inflight.add(self.lanes.submit_links(lane_of(records), records, events, stream))
