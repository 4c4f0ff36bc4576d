"""`trustscore-stream dlq list|show|replay`: read and replay `trustscore-events-dlq`.

Replays are recorded in the compacted topic `trustscore-dlq-replays` (one partition, key =
the dead letter's DLQ position, created by the first replay), written only after every
replayed record was delivered; the next run skips what it names. Rules and the exactly-once
argument: ops/dead_letters.py and docs/operations.md "Operations commands".
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from trustscore_stream.events.classification import LANES
from trustscore_stream.ops.dead_letters import (
    DeadLetter,
    Edit,
    ReplayPlan,
    Selection,
    Topology,
    count_by_reason,
    in_order,
    marker_key,
    marker_value,
    parse_dead_letter,
    parse_edit,
    parse_position,
    parse_since,
    plan_all,
    select,
)
from trustscore_stream.ops.kafka_reads import read_topic
from trustscore_stream.ops.report import clip, print_json, table
from trustscore_stream.settings import Settings
from trustscore_stream.topics import DLQ, EVENTS, lane_topic_name
from trustscore_stream.topics_admin import TopicSpec, UnknownTopic, ensure_topics

REPLAYS = "trustscore-dlq-replays"


def add_dlq_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="inspect and replay dead-lettered events")
    actions = dlq.add_subparsers(dest="dlq_action", required=True)

    def filters(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reason", action="append", default=[], help="only this reason")
        parser.add_argument("--since", help="only dead letters since: 30m, 2h, 7d or RFC 3339")
        parser.add_argument("--event-id", action="append", default=[], help="only this event")
        parser.add_argument("--limit", type=int, help="at most this many, oldest first")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    filters(actions.add_parser("list", help="dead letters and a count by reason"))
    show = actions.add_parser("show", help="one dead letter in full, raw decoded")
    show.add_argument("id", help="<partition>:<offset>[:<index>] of the input it describes")
    show.add_argument(
        "--dlq", action="store_true", help="the id is the dead letter's own DLQ position"
    )
    show.add_argument("--json", action="store_true", help="machine-readable output")
    replay = actions.add_parser("replay", help="re-publish dead-lettered events after a fix")
    filters(replay)
    replay.add_argument(
        "--set",
        dest="edits",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="change a field of each envelope first, e.g. schema_version=1 (repeatable)",
    )
    replay.add_argument("--dry-run", action="store_true", help="show the plan, send nothing")
    replay.add_argument(
        "--include-replayed",
        action="store_true",
        help="also re-send dead letters a previous replay sent (the pipeline still drops repeats)",
    )


def topology(settings: Settings) -> Topology:
    return Topology(
        events=settings.topic(EVENTS),
        lanes={lane: settings.topic(lane_topic_name(lane)) for lane in LANES},
        partitions=settings.partitions,
    )


async def run_dlq(args: argparse.Namespace, settings: Settings, bootstrap: str) -> int:
    now = datetime.now(UTC)
    letters = await read_dead_letters(bootstrap, settings)
    replayed = await read_replays(bootstrap, settings)
    if args.dlq_action == "show":
        return show(args, letters, replayed)
    selection = Selection(
        reasons=frozenset(args.reason),
        since=parse_since(args.since, now) if args.since else None,
        event_ids=frozenset(args.event_id),
        limit=args.limit,
    )
    if args.dlq_action == "list":
        return list_letters(args, letters, selection, replayed)
    edits = [parse_edit(text) for text in args.edits]
    return await replay(args, settings, bootstrap, letters, selection, edits, replayed, now)


async def read_dead_letters(bootstrap: str, settings: Settings) -> list[DeadLetter]:
    records = await read_topic(bootstrap, settings.topic(DLQ))
    return in_order(parse_dead_letter(r.partition, r.offset, r.value) for r in records)


async def read_replays(bootstrap: str, settings: Settings) -> dict[str, Any]:
    """DLQ position -> the last replay marker written for it (none before the first replay)."""
    try:
        records = await read_topic(bootstrap, settings.topic(REPLAYS))
    except UnknownTopic:
        return {}
    markers: dict[str, Any] = {}
    for record in records:
        if record.key is not None and record.value is not None:
            markers[record.key.decode()] = orjson.loads(record.value)
    return markers


def list_letters(
    args: argparse.Namespace,
    letters: list[DeadLetter],
    selection: Selection,
    replayed: dict[str, Any],
) -> int:
    matching = select(letters, Selection(selection.reasons, selection.since, selection.event_ids))
    shown = matching[: selection.limit] if selection.limit is not None else matching
    counts = count_by_reason(matching)
    if args.json:
        print_json(
            {
                "total": len(matching),
                "by_reason": counts,
                "dead_letters": [
                    {
                        "dlq": d.position,
                        "source": d.source,
                        "event_id": d.event_id,
                        "replayed": d.position in replayed,
                        **d.record,
                    }
                    for d in shown
                ],
            }
        )
        return 0
    rows = [
        (
            d.position,
            d.record.get("at"),
            d.reason,
            d.source,
            d.event_id,
            "yes" if d.position in replayed else "",
            clip(str(d.record.get("detail", "")), 50),
        )
        for d in shown
    ]
    headers = ("dlq", "at", "reason", "source", "event_id", "replayed", "detail")
    print(table(headers, rows))
    print(
        f"\n{len(matching)} dead letter(s)" + (f", {len(shown)} shown" if shown != matching else "")
    )
    print(table(("reason", "count"), list(counts.items())))
    return 0


def show(args: argparse.Namespace, letters: list[DeadLetter], replayed: dict[str, Any]) -> int:
    if args.dlq:
        partition, offset, _ = parse_position(args.id, with_index=False)
        found = [d for d in letters if (d.partition, d.offset) == (partition, offset)]
    else:
        parse_position(args.id, with_index=True)
        found = [d for d in letters if d.source == args.id]
    if not found:
        print(f"dlq show: no dead letter with {'DLQ position' if args.dlq else 'source'} {args.id}",
              file=sys.stderr)  # fmt: skip
        return 1
    out = []
    for letter in found:
        raw = letter.raw_json()
        out.append(
            {
                "dlq": letter.position,
                "record": dict(letter.record),
                # The original input: parsed when it is JSON, else its bytes as text.
                "raw_decoded": raw
                if raw is not None
                else letter.raw_bytes().decode("utf-8", "backslashreplace"),
                "replay": replayed.get(letter.position),
            }
        )
    print_json(out if args.json or len(out) > 1 else out[0])
    return 0


async def replay(
    args: argparse.Namespace,
    settings: Settings,
    bootstrap: str,
    letters: list[DeadLetter],
    selection: Selection,
    edits: Sequence[Edit],
    replayed: dict[str, Any],
    now: datetime,
) -> int:
    chosen = select(letters, selection)
    plans = plan_all(chosen, edits, topology(settings), now, replayed, args.include_replayed)
    sent = [p for p in plans if p.target != "skip"]
    if not args.dry_run and sent:
        await send(bootstrap, settings, plans)
    summary = Counter(p.target if p.target != "skip" else f"skipped:{p.reason}" for p in plans)
    if args.json:
        print_json(
            {
                "dry_run": bool(args.dry_run),
                "selected": len(plans),
                "replayed": 0 if args.dry_run else len(sent),
                "summary": dict(summary),
                "plans": [p.to_dict() for p in plans],
            }
        )
        return 0
    rows = [
        (
            p.letter.position,
            p.letter.reason,
            p.event_id,
            "skip" if p.target == "skip" else "replay",
            p.reason or f"{p.topic}" + (f"[{p.partition}]" if p.partition is not None else ""),
        )
        for p in plans
    ]
    print(table(("dlq", "reason", "event_id", "action", "target / why skipped"), rows))
    verb = "would replay" if args.dry_run else "replayed"
    print(f"\n{verb} {len(sent)} of {len(plans)} selected dead letter(s)")
    for what, count in sorted(summary.items()):
        print(f"  {what}: {count}")
    return 0


async def send(bootstrap: str, settings: Settings, plans: Sequence[ReplayPlan]) -> None:
    """Deliver every replayed record, THEN write the markers: a crash in between only makes
    the next run send again, and the pipeline drops those repeats by event id."""
    marker_topic = settings.topic(REPLAYS)
    await ensure_topics(bootstrap, [TopicSpec.compacted(marker_topic, 1, settings.replication)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        deliveries = []
        for plan in plans:
            if plan.target != "skip" and plan.topic is not None:
                deliveries.append(
                    await producer.send(
                        plan.topic, plan.value, key=plan.key, partition=plan.partition
                    )
                )
        await asyncio.gather(*deliveries)
        at = datetime.now(UTC)
        markers = []
        for plan in plans:
            if plan.target != "skip" or plan.reason == "same_event_in_this_run":
                value = marker_value(plan, at)
                markers.append(
                    await producer.send(marker_topic, value, key=marker_key(plan.letter))
                )
        await asyncio.gather(*markers)
    finally:
        await producer.stop()
