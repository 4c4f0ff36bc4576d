"""The links agent's side of the lane processor: decoding (a corrupt record is
dead-lettered, the rest go on), the lane a take is queued in, and that queued link work
reaches the engine's `fold_links` and is covered by the next checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.unit.fakes import Event, Message, Topics
from trustscore_stream.agents.lanes import LaneStage
from trustscore_stream.agents.links import LinkStage, lane_of
from trustscore_stream.agents.scoring import LaneRecord, LinkRecord
from trustscore_stream.metrics import Metrics
from trustscore_stream.scoring.creator import CollectionReport, WalletSummary
from trustscore_stream.scoring.fraud import FindingRecord
from trustscore_stream.scoring.links import ReportLink, SummaryLink, encode_links
from trustscore_stream.settings import load_settings

WALLET = "wallet:eth:0x" + "0f" * 20
REPORT = ReportLink(WALLET, "ev-1", CollectionReport("collection:eth:0x" + "01" * 20, 1, 70, 0.5))
FLAGGING = SummaryLink(
    WALLET, 2, "ev-2", WalletSummary(WALLET, {"phishing": FindingRecord(2, 0.9, 1, "ev-2")})
)


class Recording:
    pending_events = 0

    def __init__(self) -> None:
        self.folded: list[LinkRecord] = []
        self.checkpoints = 0

    async def fold(self, records: Sequence[LaneRecord]) -> None:
        return None

    async def fold_links(self, records: Sequence[LinkRecord]) -> None:
        self.folded.extend(records)

    async def publish(self) -> None:
        return None

    async def checkpoint(self) -> None:
        self.checkpoints += 1


async def test_corrupt_link_record_is_dead_lettered_and_the_rest_folded() -> None:
    settings = load_settings({})
    topics = Topics()
    engine = Recording()
    lanes = LaneStage(settings, topics, Metrics(), engine=engine)  # type: ignore[arg-type]
    stage = LinkStage(settings, topics, Metrics(), lanes)  # type: ignore[arg-type]
    (good,) = encode_links([REPORT])
    events = [Event(Message("links", 5, 1), b"not json"), Event(Message("links", 5, 2), good)]
    records = await stage.decode(events)  # type: ignore[arg-type]
    assert [r.links for r in records] == [[REPORT]]
    (dead,) = topics.dlq.sent
    assert dead["value"]["reason"] == "corrupt_internal_record"
    assert dead["value"]["offset"] == 1

    work = lanes.submit_links(lane_of(records), records, events, None)  # type: ignore[arg-type]
    popped = lanes.scheduler.pop(0.0)
    assert popped is not None and popped[0] == "normal" and popped[1] is work
    await lanes._handle("normal", work)
    assert engine.folded == records
    await lanes._checkpoint([work])
    assert work.done.done() and engine.checkpoints == 1


def test_a_flagging_summary_takes_the_critical_lane() -> None:
    event: Any = Event(Message("links", 0, 0), b"")
    assert lane_of([LinkRecord(event, [REPORT])]) == "normal"
    assert lane_of([LinkRecord(event, [REPORT, FLAGGING])]) == "critical"
    cleared = SummaryLink(WALLET, 3, "ev-3", None)
    assert lane_of([LinkRecord(event, [cleared])]) == "normal"
