"""The scoring engine moves creator and wallet state between partitions through link
records: a collection's report reaches its creator's wallet, the creator's summary reaches
the creator's other collections, a flagged wallet reaches every partition. Dependants that
someone watches are rescored eagerly; the rest see it on read. Receiving is idempotent and
survives a checkpoint and reload.

The broker is replaced by `deliver`: it hands every link record the engine sent to the
engine again, on the partition it was sent to, as the links agent would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.unit.fakes import Event, Message, Topics
from trustscore_stream.agents.scoring import LaneRecord, LinkRecord, ScoringEngine, score_state
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.partitioning import partition_for
from trustscore_stream.scoring.history import decode_history
from trustscore_stream.scoring.links import (
    FLAGGED_INDEX_KEY,
    FlaggedIndex,
    Replica,
    decode_links,
    summary_key,
)
from trustscore_stream.settings import load_settings
from trustscore_stream.tables.dedup import DedupStore
from trustscore_stream.tables.entity_state import COMMIT_PREFIX, SCORING_DEDUP_PREFIX, EntityStore
from trustscore_stream.tables.state_buckets import PartitionState

SETTINGS = load_settings({"TRUSTSCORE_STATE_BUCKETS": "4", "TRUSTSCORE_PARTITIONS": "8"})
A = "0x" + "01" * 20  # collection A: partition 1
B = "0x" + "06" * 20  # collection B: partition 4
CREATOR = "0x" + "0f" * 20  # wallet partition 5
OWNER = "0x" + "1c" * 20  # wallet partition 2
COLL_A, COLL_B = f"collection:eth:{A}", f"collection:eth:{B}"
NFT_A, NFT_B = f"nft:eth:{A}:1", f"nft:eth:{B}:7"
CREATOR_ID, OWNER_ID = f"wallet:eth:{CREATOR}", f"wallet:eth:{OWNER}"


def test_ids_hash_to_four_different_partitions() -> None:
    found = [partition_for(k, 8) for k in (COLL_A, COLL_B, CREATOR_ID, OWNER_ID)]
    assert found == [1, 4, 5, 2]


class Table(dict[bytes, bytes]):
    pass


class Watched:
    def nfts_of(self, collection: str) -> set[str]:
        return {NFT_B} if collection == COLL_B else set()

    def watched_nfts(self) -> Iterator[str]:
        yield NFT_B


def envelope(kind: str, event_id: str, contract: str | None, payload: dict[str, Any]) -> Any:
    raw: dict[str, Any] = {
        "event_id": event_id,
        "type": kind,
        "source": "chain",
        "occurred_at": datetime.now(UTC).isoformat(),
        "schema_version": 1,
        "payload": payload,
    }
    if contract:
        raw["contract"] = contract
    if kind == "mint":
        raw["token_id"] = "1" if contract == A else "7"
    return decode_record(orjson.dumps(raw)).envelopes[0]


def verified(event_id: str, contract: str) -> Any:
    return envelope(
        "collection_verified", event_id, contract, {"verified": True, "creator": CREATOR}
    )


def mint(event_id: str, contract: str) -> Any:
    return envelope("mint", event_id, contract, {"to": OWNER, "creator": CREATOR})


def finding(event_id: str, entity: str, severity: str, resolved: bool = False) -> Any:
    payload = {"entity": entity, "finding": "rug_pull", "severity": severity, "confidence": 0.95}
    if resolved:
        payload["resolved"] = True
    return envelope("fraud_finding", event_id, None, payload)


class Harness:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table if table is not None else Table()
        self.entities = EntityStore(self.table, SETTINGS, lambda: 1)  # type: ignore[arg-type]
        dedup = DedupStore(
            self.table,  # type: ignore[arg-type]
            SETTINGS,
            lambda: 1,
            prefix=SCORING_DEDUP_PREFIX,
            commit_prefix=COMMIT_PREFIX,
        )
        self.topics = Topics()
        self.metrics = Metrics()
        self.engine = ScoringEngine(
            SETTINGS,
            self.topics,  # type: ignore[arg-type]
            self.metrics,
            self.entities,
            dedup,
            Watched(),  # type: ignore[arg-type]
            lambda: 1,
        )
        self.offset = 0
        self.delivered = 0  # link records handed back so far

    def _event(self, topic: str, partition: int) -> Event:
        self.offset += 1
        return Event(Message(topic, partition, self.offset))

    async def fold(self, *envelopes: Any) -> None:
        now = datetime.now(UTC)
        for env in envelopes:
            partition = partition_for(env.partition_key, 8)
            item = routed(env, classify(env, now), time.time())
            event = self._event("lane-normal", partition)
            await self.engine.fold([LaneRecord(event, [item])])  # type: ignore[arg-type]
        await self.engine.publish()

    async def deliver(self) -> int:
        """Hand back every link record sent so far, round after round; returns the count."""
        total = 0
        while self.delivered < len(self.topics.links.sent):
            sent = self.topics.links.sent[self.delivered :]
            self.delivered = len(self.topics.links.sent)
            records = [
                LinkRecord(
                    self._event("links", m["partition"]),  # type: ignore[arg-type]
                    decode_links(m["value"]),
                )
                for m in sent
            ]
            total += len(records)
            await self.engine.fold_links(records)
            await self.engine.publish()
        return total

    def score(self, entity: str) -> dict[str, Any]:
        found = score_state(entity, self.entities, datetime.now(UTC))
        assert found is not None, entity
        return found[1].to_contract()

    def dependants(self) -> float:
        return float(self.metrics.dependants_rescored._value.get())

    def history_entities(self) -> list[str]:
        return [r.entity for m in self.topics.history.sent for r in decode_history(m["value"])]


def creator_reputation(body: dict[str, Any]) -> float:
    return float(body["factors"]["creator_reputation"]["value"])


def provenance(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["factors"]["provenance"])


async def setup() -> Harness:
    h = Harness()
    await h.fold(verified("v-a", A), verified("v-b", B), mint("m-a", A), mint("m-b", B))
    assert await h.deliver() > 0
    return h


async def test_reports_reach_the_creator_and_its_summary_reaches_both_collections() -> None:
    h = await setup()
    reports = {m["partition"] for m in h.topics.links.sent[:1]}
    assert reports == {5}  # the first round: reports to the creator's partition
    wallet = h.score(CREATOR_ID)  # the creator's own score shows its record (item 4)
    assert wallet["factors"]["creator_reputation"]["confidence"] > 0
    for partition in (1, 4):
        held = h.entities.partition(partition).get_link(summary_key(CREATOR_ID))
        assert isinstance(held, Replica) and held.summary is not None
        assert set(held.summary.collections) == {COLL_A, COLL_B}
    assert h.entities.partition(2).get_link(summary_key(CREATOR_ID)) is None
    body = h.score(COLL_B)
    assert "1 other collections by the creator" in " ".join(
        body["factors"]["creator_reputation"]["evidence"]
    )


async def test_critical_finding_on_a_lowers_creator_reputation_of_b_eagerly_for_watched() -> None:
    h = await setup()
    before_coll, before_nft = h.score(COLL_B), h.score(NFT_B)
    rows_before = len(h.history_entities())
    dependants_before = h.dependants()
    await h.fold(finding("rug-a", COLL_A, "critical"))
    assert await h.deliver() >= 2  # report to the creator, summary back to A and B
    after_coll, after_nft = h.score(COLL_B), h.score(NFT_B)
    assert creator_reputation(after_coll) < creator_reputation(before_coll) - 10
    assert creator_reputation(after_nft) < creator_reputation(before_nft) - 10
    assert any("rug_pull" in e for e in after_coll["factors"]["creator_reputation"]["evidence"])
    # B and its watched NFT were republished (eagerly); B's unwatched NFTs only on read.
    republished = h.history_entities()[rows_before:]
    assert COLL_B in republished and NFT_B in republished
    # New versions as dependants: B (marked by the creator's summary) and B's watched NFT.
    # A's own report is left out of A's creator_reputation, so A gets no new version from it.
    assert h.dependants() - dependants_before == 2
    rows = [r for m in h.topics.history.sent for r in decode_history(m["value"])]
    assert [r.cause_event_id for r in rows if r.entity == NFT_B][-1] == "rug-a"


async def test_flagged_owner_reaches_every_partition_then_clears() -> None:
    h = await setup()
    assert not any(OWNER in e for e in provenance(h.score(NFT_B))["evidence"])
    clean = provenance(h.score(NFT_B))["value"]
    rows_before = len(h.history_entities())
    await h.fold(finding("phish-1", OWNER_ID, "high"))
    await h.deliver()
    for partition in range(8):
        held = h.entities.partition(partition).get_link(summary_key(OWNER_ID))
        assert isinstance(held, Replica) and held.summary is not None
    flagged = provenance(h.score(NFT_B))
    assert flagged["value"] < clean and any(OWNER in e for e in flagged["evidence"])
    assert any(OWNER in e for e in provenance(h.score(NFT_A))["evidence"])  # read, unwatched
    assert NFT_B in h.history_entities()[rows_before:]  # watched: published eagerly
    assert NFT_A not in h.history_entities()[rows_before:]

    await h.fold(finding("phish-2", OWNER_ID, "high", resolved=True))
    await h.deliver()
    for partition in range(8):
        held = h.entities.partition(partition).get_link(summary_key(OWNER_ID))
        assert isinstance(held, Replica) and held.summary is None  # cleared
        index = h.entities.partition(partition).get_link(FLAGGED_INDEX_KEY)
        assert isinstance(index, FlaggedIndex) and not index.wallets
    assert provenance(h.score(NFT_B))["value"] == clean


async def test_repeated_links_change_nothing_and_replicas_survive_a_reload() -> None:
    h = await setup()
    await h.fold(finding("rug-a", COLL_A, "critical"))
    await h.deliver()
    expected = {e: h.score(e) for e in (COLL_B, NFT_B, CREATOR_ID)}
    rows = len(h.history_entities())
    # At-least-once: every link record arrives a second time.
    again = [
        LinkRecord(Event(Message("links", m["partition"], 10_000 + i)), decode_links(m["value"]))  # type: ignore[arg-type]
        for i, m in enumerate(h.topics.links.sent)
    ]
    sent = len(h.topics.links.sent)
    await h.engine.fold_links(again)
    await h.engine.publish()
    assert len(h.history_entities()) == rows and len(h.topics.links.sent) == sent
    await h.engine.checkpoint()
    reloaded = Harness(h.table)
    for entity, body in expected.items():
        got = reloaded.score(entity)
        assert got["factors"] == body["factors"] and got["score"] == body["score"]


def test_link_records_of_an_uncommitted_checkpoint_are_rolled_back() -> None:
    table: dict[bytes, bytes] = {}
    state = PartitionState(0, 4, table.get)
    first = Replica(OWNER_ID, 1, None)
    state.put_link(summary_key(OWNER_ID), first)
    seq, writes = state.take_writes()
    table.update(writes)
    table.update([state.commit(seq)])
    state = PartitionState(0, 4, table.get)
    assert state.get_link(summary_key(OWNER_ID)) == first
    state.put_link(summary_key(OWNER_ID), Replica(OWNER_ID, 2, None))
    state.put_link(summary_key(CREATOR_ID), Replica(CREATOR_ID, 1, None))
    _, writes = state.take_writes()
    table.update(writes)  # a kill -9 before the commit marker
    state = PartitionState(0, 4, table.get)
    assert state.get_link(summary_key(OWNER_ID)) == first
    assert state.get_link(summary_key(CREATOR_ID)) is None
