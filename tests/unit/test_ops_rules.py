"""The pure rules behind the operations commands: dead-letter replay plans and edits,
score verification verdicts, access to the ops endpoints, lane control records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from trustscore_stream.events.control import RescoreRequest, decode_lane_record, encode_control
from trustscore_stream.events.routed import decode_batch
from trustscore_stream.ops.access import check_access
from trustscore_stream.ops.dead_letters import (
    DeadLetter,
    Selection,
    Topology,
    UsageError,
    apply_edits,
    parse_edit,
    parse_since,
    plan_all,
    select,
)
from trustscore_stream.ops.verification import check_score
from trustscore_stream.scoring.model import ScoreResult
from trustscore_stream.scoring.publication import Published

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONTRACT = "0x5af0d9827e0c53e4799bb226655a1de152a425a5"
TOPOLOGY = Topology(
    events="trustscore-events",
    lanes={lane: f"trustscore-lane-{lane}" for lane in ("critical", "normal", "bulk")},
    partitions=8,
)


def envelope(event_id: str, **extra: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": "sale",
        "source": "marketplace",
        "occurred_at": "2026-11-23T11:59:00Z",
        "schema_version": 1,
        "contract": CONTRACT,
        "token_id": "1",
        "payload": {
            "seller": "0x" + "a" * 40,
            "buyer": "0x" + "b" * 40,
            "price": "1.25",
            "currency": "ETH",
        },
        **extra,
    }


def letter(position: int, reason: str, raw: object, **extra: object) -> DeadLetter:
    """A dead letter at DLQ position 0:<position>."""
    text = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
    record: dict[str, object] = {
        "reason": reason,
        "detail": "",
        "raw": text,
        "topic": "trustscore-events",
    }
    record.update({"partition": 0, "offset": position, "at": "2026-11-23T11:00:00.000Z"})
    record.update(extra)
    return DeadLetter(0, position, record)


def test_replay_rules() -> None:
    letters = [
        letter(0, "unsupported_schema_version", envelope("a", schema_version=2)),
        letter(1, "invalid_json", "not json"),
        letter(2, "batch_too_large", [envelope("b")]),
        letter(3, "corrupt_internal_record", "[1]", topic="trustscore-ingest"),
        letter(4, "unsupported_schema_version", envelope("a", schema_version=2)),  # a repeat
        letter(
            5,
            "retries_exhausted",
            envelope("c"),
            topic="trustscore-lane-normal",
            partition=None,
            offset=None,
            event_id="c",
        ),
        letter(6, "missing_field", {"type": "sale"}),
    ]
    edits = [parse_edit("schema_version=1")]
    plans = plan_all(letters, edits, TOPOLOGY, NOW, replayed={"0:6": {}})
    outcome = [(p.letter.offset, p.target, p.reason) for p in plans]
    assert outcome == [
        (0, "input", ""),
        (1, "skip", "no_event_id"),
        (2, "skip", "batch_record"),
        (3, "skip", "internal_record"),
        (4, "skip", "same_event_in_this_run"),
        (5, "lane", ""),
        (6, "skip", "already_replayed"),
    ]
    assert orjson.loads(plans[0].value)["schema_version"] == 1
    lane = plans[5]
    assert lane.topic == "trustscore-lane-normal" and lane.partition is not None
    (item,) = decode_batch(lane.value)
    assert item.event_id == "c"
    unfixed = plan_all(letters[:1], [], TOPOLOGY, NOW, replayed={})
    assert unfixed[0].reason == "still_invalid:unsupported_schema_version"
    again = plan_all(letters[6:], [], TOPOLOGY, NOW, replayed={"0:6": {}}, include_replayed=True)
    assert again[0].reason == "no_event_id"


def test_edits_and_filters() -> None:
    assert apply_edits({"payload": {"price": "1"}}, [parse_edit('payload.price="2"')]) == {
        "payload": {"price": "2"}
    }
    for bad in ('event_id="x"', "noequals", "payload.price=unquoted", "=1"):
        with pytest.raises(UsageError):
            parse_edit(bad)
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("2026-11-23T10:00:00Z", NOW) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    with pytest.raises(UsageError):
        parse_since("2026-11-23T10:00:00", NOW)
    letters = [letter(i, "invalid_json" if i % 2 else "missing_field", "x") for i in range(5)]
    assert [d.offset for d in select(letters, Selection(reasons=frozenset({"invalid_json"})))] == [
        1,
        3,
    ]
    assert len(select(letters, Selection(limit=2))) == 2
    assert select(letters, Selection(since=NOW)) == []


def result(score: float) -> ScoreResult:
    return ScoreResult(score=score, level="moderate", confidence=0.5, factors={}, model_version="1")


def test_verification_verdicts() -> None:
    stored = Published(version=3, score=70.0, level="moderate", at="2026-11-23T11:00:00.000Z")
    same, other = result(70.0), result(64.0)
    assert check_score("x", stored, same, other, pending=False, lazy=False).status == "ok"
    assert check_score("x", stored, other, same, pending=False, lazy=False).status == "ok"
    assert check_score("x", stored, other, other, pending=False, lazy=False).status == "mismatch"
    assert check_score("x", stored, other, other, pending=True, lazy=False).status == "pending"
    assert check_score("x", stored, other, other, pending=False, lazy=True).status == "lagging"
    strict = check_score("x", stored, other, other, pending=False, lazy=True, strict=True)
    assert strict.status == "mismatch"
    never = check_score("x", Published(), None, same, pending=False, lazy=False)
    assert never.status == "mismatch"


def test_ops_access() -> None:
    local = {"web_bind": "127.0.0.1", "peer": "127.0.0.1", "authorization": None, "proxied": False}
    assert check_access(token=None, **local) is None  # type: ignore[arg-type]
    assert check_access(token=None, **{**local, "peer": "10.0.0.5"}).status == 403  # type: ignore[arg-type,union-attr]
    assert check_access(token=None, **{**local, "proxied": True}).status == 403  # type: ignore[arg-type,union-attr]
    assert check_access(token=None, **{**local, "web_bind": "0.0.0.0"}).status == 403  # type: ignore[arg-type,union-attr]
    remote = {**local, "web_bind": "0.0.0.0", "peer": "10.0.0.5"}
    assert check_access(token="s3cret", **remote).status == 401  # type: ignore[arg-type,union-attr]
    wrong = {**remote, "authorization": "Bearer nope"}
    assert check_access(token="s3cret", **wrong).status == 401  # type: ignore[arg-type,union-attr]
    right = {**remote, "authorization": "Bearer s3cret"}
    assert check_access(token="s3cret", **right) is None  # type: ignore[arg-type]


def test_lane_control_record_round_trip() -> None:
    request = RescoreRequest([f"collection:eth:{CONTRACT}"], "r1", 1.5)
    decoded = decode_lane_record(encode_control(request))
    assert decoded == request and request.cause == "rescore:r1"
    assert decode_lane_record(b"[]") == []
