"""Dead letters as the `dlq` commands see them, and the replay rules (pure; no I/O).

A dead letter is one record of `trustscore-events-dlq` (docs/operations.md, "Dead-letter
records"). It is named by its own position in that topic, `<partition>:<offset>`, which is
unique (the DLQ is at-least-once, so two letters may describe the same input); its source
coordinates `<partition>:<offset>[:<index>]` are those of the input it describes.

Replay rules (`plan_replay`), why each, and the exactly-once argument: docs/operations.md
"Operations commands". In short: an envelope is replayed only if it decodes to exactly one
valid envelope with an `event_id` (the pipeline deduplicates by it); dead letters from ingest
go back to `trustscore-events`; `retries_exhausted` ones (whose ids route has already marked
seen) go to their lane, where the scoring stage's own dedup memory decides; anything else is
skipped with a reason.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import encode_batch, routed
from trustscore_stream.partitioning import partition_for

RETRIES_EXHAUSTED = "retries_exhausted"
UNREADABLE = "unreadable_dead_letter"  # a DLQ record that is not a JSON object


class UsageError(ValueError):
    """A command-line value that cannot be used (exit status 2)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int  # position in the DLQ topic
    offset: int
    record: Mapping[str, Any]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return str(self.record.get("reason", UNREADABLE))

    @property
    def topic(self) -> str | None:
        topic = self.record.get("topic")
        return topic if isinstance(topic, str) else None

    @property
    def source(self) -> str | None:
        """`partition:offset[:index]` of the input it describes, None if it has none."""
        partition, offset = self.record.get("partition"), self.record.get("offset")
        if not isinstance(partition, int) or not isinstance(offset, int):
            return None
        index = self.record.get("index")
        return f"{partition}:{offset}" + (f":{index}" if isinstance(index, int) else "")

    @property
    def at(self) -> datetime | None:
        raw = self.record.get("at")
        if not isinstance(raw, str):
            return None
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None

    def raw_bytes(self) -> bytes:
        """The original input bytes (`raw`, base64 when `raw_encoding` says so)."""
        raw = self.record.get("raw")
        if not isinstance(raw, str):
            return b""
        if self.record.get("raw_encoding") == "base64":
            try:
                return base64.b64decode(raw, validate=True)
            except ValueError:
                return raw.encode()
        return raw.encode()

    def raw_json(self) -> Any:
        """`raw` parsed as JSON, None if it is not JSON."""
        try:
            return orjson.loads(self.raw_bytes())
        except orjson.JSONDecodeError:
            return None

    @property
    def event_id(self) -> str | None:
        """The id the dead letter names, or the one its raw envelope carries."""
        named = self.record.get("event_id")
        if isinstance(named, str):
            return named
        raw = self.raw_json()
        if isinstance(raw, dict) and isinstance(raw.get("event_id"), str):
            return str(raw["event_id"])
        return None


def parse_dead_letter(partition: int, offset: int, value: bytes | None) -> DeadLetter:
    """A consumed DLQ record; one that is not a JSON object is kept, as `unreadable`."""
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        text = (value or b"").decode("utf-8", "replace")
        record = {"reason": UNREADABLE, "detail": "DLQ record is not a JSON object", "raw": text}
    return DeadLetter(partition, offset, record)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `2h`, `7d` (before `now`) or an RFC 3339 time with a zone."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since takes 30m, 2h, 7d or an RFC 3339 time, got {text!r}") from None
    if moment.tzinfo is None:
        raise UsageError(f"--since needs a time zone (e.g. Z), got {text!r}")
    return moment.astimezone(UTC)


def parse_position(text: str, with_index: bool) -> tuple[int, int, int | None]:
    """`partition:offset` (or `partition:offset:index` when `with_index`)."""
    parts = text.split(":")
    allowed = (2, 3) if with_index else (2,)
    if len(parts) not in allowed or not all(p.isdigit() for p in parts):
        shape = "<partition>:<offset>[:<index>]" if with_index else "<partition>:<offset>"
        raise UsageError(f"expected {shape}, got {text!r}")
    index = int(parts[2]) if len(parts) == 3 else None
    return int(parts[0]), int(parts[1]), index


@dataclass(frozen=True, slots=True)
class Selection:
    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    event_ids: frozenset[str] = frozenset()
    limit: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.since is not None:
            at = letter.at
            if at is None or at < self.since:
                return False
        return not self.event_ids or letter.event_id in self.event_ids


def in_order(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """Oldest first by `at` (letters without one first), then by DLQ position."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(letters, key=lambda d: (d.at or epoch, d.partition, d.offset))


def select(letters: Iterable[DeadLetter], selection: Selection) -> list[DeadLetter]:
    chosen = [d for d in in_order(letters) if selection.matches(d)]
    return chosen[: selection.limit] if selection.limit is not None else chosen


def count_by_reason(letters: Iterable[DeadLetter]) -> dict[str, int]:
    counts = Counter(d.reason for d in letters)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# --- edits -----------------------------------------------------------------------------

PROTECTED_FIELDS = ("event_id",)  # the identity the pipeline deduplicates by


@dataclass(frozen=True, slots=True)
class Edit:
    """Set the field at a dotted path (`payload.price`) to a JSON value."""

    path: tuple[str, ...]
    value: Any

    def describe(self) -> str:
        return f"{'.'.join(self.path)}={orjson.dumps(self.value).decode()}"


def parse_edit(text: str) -> Edit:
    path, sep, raw = text.partition("=")
    keys = tuple(path.strip().split("."))
    if not sep or not all(keys):
        raise UsageError(f"--set takes FIELD=JSON (e.g. schema_version=1), got {text!r}")
    if keys[0] in PROTECTED_FIELDS:
        raise UsageError("--set may not change event_id: the pipeline deduplicates by it")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UsageError(
            f"--set {path}: the value must be JSON (a string needs quotes: '{path}=\"x\"')"
        ) from None
    return Edit(keys, value)


def apply_edits(envelope: dict[str, Any], edits: Sequence[Edit]) -> dict[str, Any]:
    """A copy of `envelope` with the edits applied (missing objects on a path are created)."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(envelope))
    for edit in edits:
        target = out
        for key in edit.path[:-1]:
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            target = child
        target[edit.path[-1]] = edit.value
    return out


# --- replay plans ----------------------------------------------------------------------

Target = Literal["input", "lane", "skip"]


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    letter: DeadLetter
    target: Target
    reason: str = ""  # why skipped
    event_id: str | None = None
    topic: str | None = None  # where the record goes
    partition: int | None = None  # None: the producer picks (input topic)
    key: bytes | None = None
    value: bytes = b""
    edits: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dlq": self.letter.position,
            "reason": self.letter.reason,
            "event_id": self.event_id,
            "action": "skip" if self.target == "skip" else "replay",
            "target": self.topic,
            "partition": self.partition,
            "skip_reason": self.reason or None,
            "edits": list(self.edits),
        }


@dataclass(frozen=True, slots=True)
class Topology:
    """The topic names (with the deployment's prefix) and partition count of the app."""

    events: str
    lanes: Mapping[str, str]  # lane -> topic
    partitions: int


def plan_replay(
    letter: DeadLetter, edits: Sequence[Edit], topology: Topology, now: datetime
) -> ReplayPlan:
    """What replaying one dead letter would do (see the module docstring)."""

    def skip(reason: str, event_id: str | None = None) -> ReplayPlan:
        return ReplayPlan(letter, "skip", reason=reason, event_id=event_id)

    lane_topics = set(topology.lanes.values())
    if letter.topic == topology.events:
        to_lane = False
    elif letter.reason == RETRIES_EXHAUSTED and letter.topic in lane_topics:
        to_lane = True
    else:
        return skip("internal_record" if letter.topic else "unknown_origin", letter.event_id)
    raw = letter.raw_json()
    if isinstance(raw, list):
        return skip("batch_record")
    if not isinstance(raw, dict) or not isinstance(raw.get("event_id"), str):
        return skip("no_event_id")
    envelope = apply_edits(raw, edits) if edits else raw
    encoded = orjson.dumps(envelope)
    decoded = decode_record(encoded)
    if decoded.rejections or len(decoded.envelopes) != 1:
        why = decoded.rejections[0].reason if decoded.rejections else "not_one_envelope"
        return skip(f"still_invalid:{why}", str(raw["event_id"]))
    valid = decoded.envelopes[0]
    described = tuple(e.describe() for e in edits)
    key = valid.partition_key.encode()
    if not to_lane:
        return ReplayPlan(
            letter, "input", event_id=valid.event_id, topic=topology.events, key=key,
            value=encoded, edits=described,
        )  # fmt: skip
    # Route has marked this id seen already: input would be dropped as a repeat. The lane
    # record reaches scoring, whose own dedup memory applies it at most once.
    item = routed(valid, classify(valid, now), now.timestamp())
    return ReplayPlan(
        letter,
        "lane",
        event_id=valid.event_id,
        topic=topology.lanes[item.lane],
        partition=partition_for(valid.partition_key, topology.partitions),
        key=key,
        value=encode_batch([item]),
        edits=described,
    )


def plan_all(
    letters: Sequence[DeadLetter],
    edits: Sequence[Edit],
    topology: Topology,
    now: datetime,
    replayed: Mapping[str, Any],
    include_replayed: bool = False,
) -> list[ReplayPlan]:
    """Plans for the selected letters, in order: letters already replayed (by a marker) are
    skipped unless `include_replayed`; an event id already planned in this run is skipped."""
    plans: list[ReplayPlan] = []
    planned: set[str] = set()
    for letter in letters:
        if letter.position in replayed and not include_replayed:
            plans.append(ReplayPlan(letter, "skip", "already_replayed", letter.event_id))
            continue
        plan = plan_replay(letter, edits, topology, now)
        if plan.target != "skip" and plan.event_id in planned:
            plan = ReplayPlan(letter, "skip", "same_event_in_this_run", plan.event_id)
        elif plan.event_id is not None and plan.target != "skip":
            planned.add(plan.event_id)
        plans.append(plan)
    return plans


def marker_key(letter: DeadLetter) -> bytes:
    return letter.position.encode()


def marker_value(plan: ReplayPlan, at: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": plan.event_id,
            "reason": plan.letter.reason,
            "target": plan.topic,
            "edits": list(plan.edits),
            "replayed_at": at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "outcome": "sent" if plan.target != "skip" else plan.reason,
        }
    )
