"""A kill -9 during a checkpoint leaves any prefix of its table writes durable. For every
such prefix, a fresh engine that restores it and replays the unacknowledged input must end
with exactly the state of a run without a crash: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
import orjson

from tests.stack import CONTRACT, WALLET_A, WALLET_B, now_rfc3339, sale
from tests.unit.fakes import Event, Message, Topics
from trustscore_stream.agents.scoring import LaneRecord, ScoringEngine, score_stored
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import Routed, routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.scoring.history import HistoryRow, decode_history
from trustscore_stream.scoring.publication import Published
from trustscore_stream.scoring.state import encode_state
from trustscore_stream.settings import load_settings
from trustscore_stream.tables.dedup import DedupStore
from trustscore_stream.tables.entity_state import (
    COMMIT_PREFIX,
    SCORING_DEDUP_PREFIX,
    EntityStore,
)

OTHER = "0x" + "5e" * 20  # a second collection on the same partition
SETTINGS = load_settings({"TRUSTSCORE_STATE_BUCKETS": "4", "TRUSTSCORE_PARTITIONS": "1"})


class Table(dict[bytes, bytes]):
    """A table that logs its writes in order, as its changelog would receive them."""

    def __init__(self, initial: dict[bytes, bytes] | None = None) -> None:
        super().__init__(initial or {})
        self.log: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        super().__setitem__(key, value)
        self.log.append((key, value))

    def __delitem__(self, key: bytes) -> None:
        super().__delitem__(key)
        self.log.append((key, None))


def engine_over(table: Table) -> tuple[ScoringEngine, EntityStore]:
    entities = EntityStore(table, SETTINGS, lambda: 1)  # type: ignore[arg-type]
    dedup = DedupStore(
        table,  # type: ignore[arg-type]
        SETTINGS,
        lambda: 1,
        prefix=SCORING_DEDUP_PREFIX,
        commit_prefix=COMMIT_PREFIX,
    )
    engine = ScoringEngine(SETTINGS, Topics(), Metrics(), entities, dedup, None, lambda: 1)  # type: ignore[arg-type]
    return engine, entities


def items(envelopes: list[dict[str, Any]]) -> list[Routed]:
    now = datetime.now(UTC)
    decoded = decode_record(orjson.dumps(envelopes)).envelopes
    return [routed(e, classify(e, now), time.time()) for e in decoded]


def mint(event_id: str, contract: str, token: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "mint",
        "source": "chain",
        "occurred_at": now_rfc3339(),
        "schema_version": 1,
        "contract": contract,
        "token_id": str(token),
        "payload": {"to": WALLET_A},
    }


def lane_records(start_offset: int, batches: list[list[dict[str, Any]]]) -> list[LaneRecord]:
    return [
        LaneRecord(Event(Message("lane-normal", 0, start_offset + i)), items(b))  # type: ignore[arg-type]
        for i, b in enumerate(batches)
    ]


FIRST = [
    [mint(f"m{i}", CONTRACT, i) for i in range(6)],
    [mint(f"o{i}", OTHER, i) for i in range(5)],
]
SECOND = [
    [sale(f"s{i}", token=i % 6) for i in range(8)],
    [mint(f"p{i}", OTHER, 10 + i) for i in range(4)] + [mint("m0", CONTRACT, 0)],  # one dup
    [sale(f"t{i}", token=i, seller=WALLET_B) for i in range(3)],
]


def states(entities: EntityStore) -> dict[str, bytes]:
    state = entities.partition(0)
    keys = [f"collection:eth:{CONTRACT}", f"collection:eth:{OTHER}"]
    keys += [f"nft:eth:{c}:{t}" for c in (CONTRACT, OTHER) for t in range(14)]
    found = {k: state.get(k) for k in keys}
    return {k: encode_state(s.state) for k, s in found.items() if s is not None}


async def run(table: Table, records: list[LaneRecord]) -> EntityStore:
    engine, entities = engine_over(table)
    await engine.fold(records)
    await engine.checkpoint()
    return entities


async def test_every_durable_prefix_of_a_checkpoint_recovers_exactly() -> None:
    first, second = lane_records(0, FIRST), lane_records(len(FIRST), SECOND)
    # Without a crash: two checkpoints, the second's input acknowledged.
    clean = Table()
    await run(clean, first)
    durable_after_first = dict(clean)
    expected = states(await run(clean, second))
    mints = {c: orjson.loads(v)["mn"] for c, v in expected.items() if c.startswith("coll")}
    assert mints == {
        f"collection:eth:{CONTRACT}": 6,  # the repeated m0 is dropped
        f"collection:eth:{OTHER}": 9,
    }

    writes = Table(durable_after_first)
    await run(writes, second)
    log = writes.log
    assert len(log) >= 4  # several buckets, the dedup chunk, the commit marker
    assert log[-2][0].startswith(SCORING_DEDUP_PREFIX.encode())
    assert log[-1][0] == f"{COMMIT_PREFIX}0".encode()

    for durable in range(len(log) + 1):
        # The crash left `durable` of the second checkpoint's writes; its input was not
        # acknowledged, so a fresh engine replays it over the restored table.
        restored = Table(durable_after_first)
        for key, value in log[:durable]:
            if value is None:
                dict.pop(restored, key, None)
            else:
                dict.__setitem__(restored, key, value)
        recovered = await run(restored, lane_records(len(FIRST), SECOND))
        assert states(recovered) == expected, f"prefix of {durable} writes"


def test_history_records_stay_small() -> None:
    from trustscore_stream.scoring.history import HistoryRow, decode_history, encode_history

    row = HistoryRow(
        "nft:eth:0x1:1",
        1,
        50.0,
        "moderate",
        0.5,
        "m1",
        msgspec.Raw(b"{}"),
        ["a" * 100],
        None,
        datetime.now(UTC),
    )
    records = encode_history([row] * 1000, max_bytes=10_000)
    assert all(len(r) <= 10_000 for r in records) and len(records) > 10
    assert sum(len(decode_history(r)) for r in records) == 1000


class Broker:
    """The engine's output topics as logs: records per (topic, partition), in order."""

    def __init__(self) -> None:
        self.logs: dict[tuple[str, int], list[bytes]] = defaultdict(list)

    def history(self, partition: int = 0) -> list[bytes]:
        return self.logs[("history", partition)]

    def rows(self) -> list[HistoryRow]:
        return [row for record in self.history() for row in decode_history(record)]


class BrokerOutput:
    """`Output` into a `Broker`: every record is delivered at once, with its offset."""

    def __init__(self, broker: Broker, topics: Topics) -> None:
        self.broker = broker
        self.topics = topics

    async def send(
        self, topic: object, *, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[SimpleNamespace]:
        name = "history" if topic is self.topics.history else "deltas"
        if topic is self.topics.links:
            name = "links"
        log = self.broker.logs[(name, partition or 0)]
        log.append(value)
        delivered: asyncio.Future[SimpleNamespace] = asyncio.get_running_loop().create_future()
        delivered.set_result(SimpleNamespace(offset=len(log) - 1))
        return delivered

    async def flush(self) -> None:
        return None


class BrokerTail:
    """`HistoryTail` over a `Broker`; remembers where each read started."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.starts: list[dict[int, int | None]] = []

    async def read(
        self,
        starts: Mapping[int, int | None],
        apply: Callable[[int, list[HistoryRow]], None],
    ) -> dict[int, int]:
        self.starts.append(dict(starts))
        ends = {}
        for partition, start in starts.items():
            log = self.broker.history(partition)
            for record in log[start or 0 :]:
                apply(partition, decode_history(record))
            ends[partition] = len(log)
        return ends


def engine_with_history(table: Table, broker: Broker) -> tuple[ScoringEngine, BrokerTail]:
    entities = EntityStore(table, SETTINGS, lambda: 1)  # type: ignore[arg-type]
    dedup = DedupStore(
        table,  # type: ignore[arg-type]
        SETTINGS,
        lambda: 1,
        prefix=SCORING_DEDUP_PREFIX,
        commit_prefix=COMMIT_PREFIX,
    )
    topics = Topics()
    tail = BrokerTail(broker)
    output = BrokerOutput(broker, topics)
    engine = ScoringEngine(
        SETTINGS,
        topics,  # type: ignore[arg-type]
        Metrics(),
        entities,
        dedup,
        None,
        lambda: 1,
        output,
        tail,  # type: ignore[arg-type]
    )
    return engine, tail


def published(engine: ScoringEngine) -> dict[str, Published]:
    state = engine.entities.partition(0)
    found = {k: state.get(k) for k in state.entity_keys()}
    return {k: s.published for k, s in found.items() if s is not None}


def versions_by_entity(rows: list[HistoryRow]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        out[row.entity].append(row.version)
    return dict(out)


def assert_continues(
    last_seen: dict[str, Published],
    engine: ScoringEngine,
    new_rows: list[HistoryRow],
    reference: ScoringEngine,
) -> dict[str, Published]:
    """Every entity of `engine` continues from the version last published before it was
    restored (`last_seen`): unchanged where its score is the one published, else exactly
    one version more, with the score `reference` (the crashed worker's state) gives now.
    Returns what `engine` published last."""
    now = published(engine)
    republished = {row.entity for row in new_rows}
    assert len(new_rows) == len(republished)
    assert set(now) == set(last_seen)
    for entity, was in last_seen.items():
        if entity in republished:
            assert now[entity].version == was.version + 1, entity
            assert now[entity].score != was.score, entity
            assert now[entity].score == current_score(reference, entity), entity
        else:
            assert now[entity] == was, entity
    return now


async def test_versions_published_after_the_checkpoint_are_continued_not_reissued() -> None:
    # A worker checkpoints FIRST, then folds and publishes SECOND in two windows, and is
    # killed before its next checkpoint.
    broker = Broker()
    table = Table()
    crashed, _ = engine_with_history(table, broker)
    await crashed.fold(lane_records(0, FIRST))
    await crashed.checkpoint()
    durable = dict(table)
    at_checkpoint = len(broker.history())
    second = lane_records(len(FIRST), SECOND)
    await crashed.fold(second[:2])
    await crashed.publish()
    await crashed.fold(second[2:])
    await crashed.publish()
    last_seen = published(crashed)
    assert len(broker.history()) == at_checkpoint + 2
    assert any(p.version > 1 for p in last_seen.values())
    created_since = [k for k in last_seen if k not in states_at(durable)]
    assert created_since  # the NFTs minted after the checkpoint
    # The checkpoint's own history records (delivered before its marker here) describe
    # its state: the mark points past them.
    mark = orjson.loads(durable[b"h:0"])
    assert mark == {"s": 1, "o": at_checkpoint}

    for n, old_marker in enumerate((True, False)):
        restored = Table(durable)
        if old_marker:  # state written before the history mark existed
            dict.pop(restored, b"h:0")
        rows_before = len(broker.rows())
        engine, tail = engine_with_history(restored, broker)
        # The unacknowledged input is read again, in one window this time.
        await engine.fold(lane_records(len(FIRST), SECOND))
        await engine.publish()
        assert tail.starts == [{0: None if old_marker else mark["o"]}]
        # Where the score is the one published, nothing new is published (entities
        # created after the checkpoint included). An NFT the crashed worker left to be
        # scored on read (its collection changed in the second window, not the NFT
        # itself) is versioned now, once, numbered after what it published.
        new_rows = broker.rows()[rows_before:]
        last_seen = assert_continues(last_seen, engine, new_rows, crashed)
        assert all(row.entity.startswith("nft:") for row in new_rows)
        assert len(new_rows) < len(last_seen) / 2
        if n:  # a second restore over the same input: all of it was published
            assert not new_rows

    # A new event: the next version of what it changes is numbered after the crashed
    # worker's, and no entity's history has a number twice or a gap.
    new_event = lane_records(10, [[sale("new-1", token=2, price="40")]])
    await engine.fold(new_event)
    await engine.publish()
    now = published(engine)
    moved = [k for k in now if now[k].version != last_seen[k].version]
    assert moved and all(now[k].version == last_seen[k].version + 1 for k in moved)
    for entity, versions in versions_by_entity(broker.rows()).items():
        assert versions == list(range(1, len(versions) + 1)), entity

    # Its checkpoint stores a mark past everything delivered. For every prefix of that
    # checkpoint a crash may leave durable (a marker without its mark included: the
    # older mark is still a valid start), the next restore continues from what was last
    # published (by the worker, or by the restore before: they share the history topic).
    base = dict(restored)
    restored.log.clear()
    await engine.checkpoint()
    writes = list(restored.log)
    assert [k for k, _ in writes[-2:]] == [b"c:0", b"h:0"]
    newest_mark = orjson.loads(restored[b"h:0"])
    assert newest_mark == {"s": 2, "o": len(broker.history())}
    for durable_writes in range(len(writes) + 1):
        after_crash = Table(base)
        for key, value in writes[:durable_writes]:
            assert value is not None
            dict.__setitem__(after_crash, key, value)
        rows_before = len(broker.rows())
        again, tail = engine_with_history(after_crash, broker)
        # All its input is read again: what the marker covers is dropped as duplicates.
        await again.fold(lane_records(len(FIRST), SECOND) + new_event)
        await again.publish()
        complete = durable_writes == len(writes)
        expected_start = newest_mark["o"] if complete else mark["o"]
        assert tail.starts == [{0: expected_start}], durable_writes
        now = assert_continues(now, again, broker.rows()[rows_before:], engine)


def decoded(records: list[bytes]) -> list[HistoryRow]:
    return [row for record in records for row in decode_history(record)]


def current_score(engine: ScoringEngine, entity: str) -> float:
    state = engine.entities.partition(0)
    stored = state.get(entity)
    assert stored is not None
    return score_stored(entity, stored, state, datetime.now(UTC)).score


def states_at(durable: dict[bytes, bytes]) -> set[str]:
    """The entities of the checkpointed state."""
    state = EntityStore(Table(durable), SETTINGS, lambda: 1).partition(0)  # type: ignore[arg-type]
    return set(state.entity_keys())


async def test_a_checkpoint_before_adopted_entities_exist_keeps_their_history_in_reach() -> None:
    """An entity created after the checkpoint has versions in history but no restored
    state; while the re-read input has not created it yet, later checkpoints keep the
    history mark where it was, so a second crash still finds its versions."""
    broker = Broker()
    table = Table()
    crashed, _ = engine_with_history(table, broker)
    await crashed.fold(lane_records(0, FIRST))
    await crashed.checkpoint()
    durable = dict(table)
    mark = orjson.loads(durable[b"h:0"])
    second = lane_records(len(FIRST), SECOND)
    await crashed.fold(second)
    await crashed.publish()
    last_seen = published(crashed)
    minted_since = [f"nft:eth:{OTHER}:{10 + i}" for i in range(4)]
    assert all(last_seen[k].version == 1 for k in minted_since)

    # The first restore folds and checkpoints only the sales (not the later mints).
    restored = Table(durable)
    first, tail = engine_with_history(restored, broker)
    await first.fold(second[:1])
    await first.checkpoint()
    assert orjson.loads(restored[b"h:0"]) == {"s": 2, "o": mark["o"]}  # held
    # Once the mints are folded, they continue from version 1 and the mark moves on.
    await first.fold(second[1:])
    await first.checkpoint()
    assert all(published(first)[k] == last_seen[k] for k in minted_since)
    assert orjson.loads(restored[b"h:0"])["o"] == len(broker.history())

    # A crash after the held checkpoint: the next restore still adopts the mints' versions.
    held = Table(durable)
    again, _ = engine_with_history(held, broker)
    await again.fold(second[:1])
    await again.checkpoint()
    after_second_crash, tail = engine_with_history(Table(dict(held)), broker)
    await after_second_crash.fold(second[1:])
    await after_second_crash.publish()
    assert tail.starts == [{0: mark["o"]}]
    assert all(published(after_second_crash)[k] == last_seen[k] for k in minted_since)
    for entity, versions in versions_by_entity(broker.rows()).items():
        assert versions == list(range(1, len(versions) + 1)), entity
