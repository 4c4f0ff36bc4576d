"""A collection-level change reaches only the NFTs somebody watches: the work is
proportional to watched NFTs, not to the collection's size."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest

from tests.stack import CONTRACT, fraud, sale
from tests.unit.fakes import Event, Message, Topics
from trustscore_stream.agents import scoring as scoring_module
from trustscore_stream.agents.scoring import LaneRecord, ScoringEngine
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.dedup import DedupMemory
from trustscore_stream.events.routed import routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.scoring import CollectionState, NftState, apply
from trustscore_stream.scoring.history import decode_history
from trustscore_stream.scoring.links import Linked
from trustscore_stream.scoring.publication import Stored
from trustscore_stream.settings import load_settings

COLLECTION = f"collection:eth:{CONTRACT}"
SIZE = 100_000
WATCHED = 10


def minted() -> NftState:
    event = decode_record(orjson.dumps(sale("s0", token=0))).envelopes[0]
    state = apply({}, event)[f"nft:eth:{CONTRACT}:0"]
    assert isinstance(state, NftState)
    return state


class Partition:
    """PartitionState's interface over a dict, counting reads."""

    def __init__(self) -> None:
        self.records: dict[str, Stored] = {COLLECTION: Stored(CollectionState(id=COLLECTION))}
        template = minted()
        for token in range(SIZE):
            key = f"nft:eth:{CONTRACT}:{token}"
            self.records[key] = Stored(msgspec.structs.replace(template, id=key))
        self.reads = 0
        self.puts: set[str] = set()
        self.links: dict[str, Linked] = {}

    def get(self, key: str) -> Stored | None:
        self.reads += 1
        return self.records.get(key)

    def put(self, key: str, stored: Stored) -> None:
        self.records[key] = stored
        self.puts.add(key)

    def get_link(self, key: str) -> Linked | None:
        self.reads += 1
        return self.links.get(key)

    def put_link(self, key: str, linked: Linked) -> None:
        self.links[key] = linked

    def holds(self, key: str, source: str, offset: int) -> bool:
        return False

    def folded(self, source: str, offset: int) -> None:
        return None


class Entities:
    def __init__(self) -> None:
        self.state = Partition()

    def partition(self, partition: int) -> Partition:
        return self.state


class Dedup:
    def __init__(self) -> None:
        self.memories: dict[int, DedupMemory] = {}

    def memory(self, partition: int) -> DedupMemory:
        return self.memories.setdefault(partition, DedupMemory(retention_s=3600, max_ids=10**6))


class Watched:
    def nfts_of(self, collection: str) -> set[str]:
        return (
            {f"nft:eth:{CONTRACT}:{t}" for t in range(WATCHED)}
            if collection == COLLECTION
            else set()
        )


async def test_collection_finding_rescores_watched_nfts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entities = Entities()
    topics = Topics()
    engine = ScoringEngine(
        load_settings({}),
        topics,  # type: ignore[arg-type]
        Metrics(),
        entities,  # type: ignore[arg-type]
        Dedup(),  # type: ignore[arg-type]
        Watched(),  # type: ignore[arg-type]
        generation=lambda: 1,
    )
    scored: list[str] = []
    real = scoring_module.score_stored

    def counting(key: str, *args: Any) -> Any:
        scored.append(key)
        return real(key, *args)

    monkeypatch.setattr(scoring_module, "score_stored", counting)
    now = datetime.now(UTC)
    finding = decode_record(orjson.dumps(fraud("rug", "critical", 0.95))).envelopes[0]
    item = routed(finding, classify(finding, now), time.time())
    record = LaneRecord(Event(Message("lane", 0, 7)), [item])  # type: ignore[arg-type]
    await engine.fold([record])
    await engine.publish()

    assert sorted(scored) == sorted([COLLECTION, *Watched().nfts_of(COLLECTION)])
    assert entities.state.reads <= 4 * (WATCHED + 1)  # not ~100,000
    rows = {r.entity: r for m in topics.history.sent for r in decode_history(m["value"])}
    assert COLLECTION in rows
    for nft in Watched().nfts_of(COLLECTION):
        assert rows[nft].level == "high_risk"  # eagerly rescored and published
    assert entities.state.puts == {COLLECTION, *Watched().nfts_of(COLLECTION)}
    deltas = {m["key"].decode() for m in topics.deltas.sent}
    assert deltas == {COLLECTION, *Watched().nfts_of(COLLECTION)}
