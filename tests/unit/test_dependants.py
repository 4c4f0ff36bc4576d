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
from trustscore_stream.agents import scoring as scoring_module
from trustscore_stream.agents.scoring import ScoringStage
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.dedup import DedupMemory
from trustscore_stream.events.routed import routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.scoring import CollectionState, NftState, apply
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


class Entities:
    def __init__(self) -> None:
        self.records: dict[str, Stored] = {COLLECTION: Stored(CollectionState(id=COLLECTION))}
        template = minted()
        for token in range(SIZE):
            key = f"nft:eth:{CONTRACT}:{token}"
            self.records[key] = Stored(msgspec.structs.replace(template, id=key))
        self.reads = 0

    def get(self, key: str) -> Stored | None:
        self.reads += 1
        return self.records.get(key)


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


def test_collection_finding_rescores_watched_nfts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    entities = Entities()
    stage = ScoringStage(
        load_settings({}),
        None,
        Metrics(),
        entities,
        Dedup(),
        None,
        Watched(),  # type: ignore[arg-type]
    )
    scored: list[str] = []
    real = scoring_module.score_state

    def counting(key: str, *args: Any) -> Any:
        scored.append(key)
        return real(key, *args)

    monkeypatch.setattr(scoring_module, "score_state", counting)
    now = datetime.now(UTC)
    finding = decode_record(orjson.dumps(fraud("rug", "critical", 0.95))).envelopes[0]
    item = routed(finding, classify(finding, now), time.time())
    records, publications = stage._fold(0, [item], time.time(), now)

    assert sorted(scored) == sorted([COLLECTION, *Watched().nfts_of(COLLECTION)])
    assert entities.reads <= 3 * (WATCHED + 1)  # not ~100,000
    published = {p.entity: p for p in publications}
    assert COLLECTION in published
    for nft in Watched().nfts_of(COLLECTION):
        assert published[nft].level == "high_risk"  # eagerly rescored and published
    assert len(records) == WATCHED + 1
