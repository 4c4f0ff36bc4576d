"""A kill -9 during a checkpoint leaves any prefix of its table writes durable. For every
such prefix, a fresh engine that restores it and replays the unacknowledged input must end
with exactly the state of a run without a crash: nothing lost, nothing counted twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from tests.stack import CONTRACT, WALLET_A, WALLET_B, now_rfc3339, sale
from tests.unit.fakes import Event, Message, Topics
from trustscore_stream.agents.scoring import LaneRecord, ScoringEngine
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import Routed, routed
from trustscore_stream.metrics import Metrics
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
