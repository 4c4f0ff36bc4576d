"""`trustscore-stream status`: the consumer groups and their members, what each worker owns,
lag per topic-partition (committed offsets against high watermarks) and table sizes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from trustscore_stream.ops.kafka_reads import high_watermarks
from trustscore_stream.ops.report import print_json, table
from trustscore_stream.ops.worker_client import OpsError, WorkerClient
from trustscore_stream.settings import Settings
from trustscore_stream.topics import EVENTS, topic_specs


def add_status_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="workers, partitions, lag and table sizes")
    status.add_argument("--json", action="store_true", help="machine-readable output")


@dataclass(frozen=True, slots=True)
class Lag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


async def group_members(bootstrap: str, groups: list[str]) -> dict[str, dict[str, Any]]:
    """Per group: its state and members (id, client id, host) as the broker describes them,
    or why it could not be described (the embedded broker answers DescribeGroups for
    Faust's group with a body aiokafka cannot decode: the workers' own status says more)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    out: dict[str, dict[str, Any]] = {}
    try:
        for group_id in groups:
            try:
                responses = await admin.describe_consumer_groups([group_id])
            except (KafkaError, ValueError) as exc:
                out[group_id] = {"state": None, "members": None, "error": repr(exc)}
                continue
            for response in responses:
                for group in response.groups:
                    members = [
                        {"member_id": m[0], "client_id": m[1] or None, "host": m[2] or None}
                        for m in group[5]
                    ]
                    out[str(group[1])] = {"state": group[2], "members": members, "error": None}
    finally:
        await admin.close()
    return out


async def committed(
    bootstrap: str, group: str, tps: list[TopicPartition]
) -> dict[tuple[str, int], int | None]:
    """The group's committed offsets (an OffsetFetch without joining the group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        found: dict[tuple[str, int], int | None] = {}
        for tp in tps:
            offset = await consumer.committed(tp)
            found[(tp.topic, tp.partition)] = None if offset is None else int(offset)
        return found
    finally:
        await consumer.stop()


async def lags(bootstrap: str, settings: Settings) -> list[Lag]:
    """Lag of the ingest group on the input topic and of the app's group on every other
    topic it has committed on (its lane, internal and output topics)."""
    names = [spec.name for spec in topic_specs(settings)]
    ends = await high_watermarks(bootstrap, names)
    events = settings.topic(EVENTS)
    rows: list[Lag] = []
    for group, topics in (
        (f"{settings.app_id}-ingest", [events]),
        (settings.app_id, [n for n in names if n != events]),
    ):
        tps = [TopicPartition(t, p) for (t, p) in sorted(ends) if t in topics]
        offsets = await committed(bootstrap, group, tps)
        consumed = {t for (t, _), o in offsets.items() if o is not None}
        for (topic, partition), offset in sorted(offsets.items()):
            if topic in consumed or topic == events:
                rows.append(Lag(group, topic, partition, offset, ends[(topic, partition)]))
    return rows


async def run_status(
    args: argparse.Namespace,
    settings: Settings,
    bootstrap: str,
    client: WorkerClient,
    seeds: list[str],
) -> int:
    groups = [settings.app_id, f"{settings.app_id}-ingest"]
    members, lag_rows = await asyncio.gather(
        group_members(bootstrap, groups), lags(bootstrap, settings)
    )
    try:
        workers: dict[str, Any] = await client.discover(seeds)
        worker_error = None
    except OpsError as exc:
        workers, worker_error = {}, str(exc)
    if args.json:
        print_json(
            {
                "groups": members,
                "workers": workers,
                "worker_error": worker_error,
                "lag": [{**asdict(r), "lag": r.lag} for r in lag_rows],
                "total_lag": {g: sum(r.lag for r in lag_rows if r.group == g) for g in groups},
            }
        )
        return 1 if worker_error else 0
    group_rows = []
    for group in groups:
        described = members.get(group, {})
        listed = described.get("members")
        count = len(listed) if listed is not None else described.get("error", "unknown")
        group_rows.append((group, described.get("state"), count))
    print(table(("group", "state", "members"), group_rows))
    print()
    if workers:
        rows = []
        for url, status in workers.items():
            rows.append(
                (
                    url,
                    ",".join(status["stages"]),
                    _ranges(status["state_partitions"]),
                    sum(len(ps) for ps in status["standby"].values()),
                    "yes" if status["rebalancing"] else "",
                )
            )
        print(table(("worker", "stages", "partitions", "standby tps", "rebalancing"), rows))
        print()
        table_rows = [
            (url, name, size["keys"], size["bytes"])
            for url, status in workers.items()
            for name, size in sorted(status["tables"].items())
        ]
        print(table(("worker", "table", "keys", "bytes"), table_rows))
        print()
    else:
        print(f"workers: {worker_error}", file=sys.stderr)
    print(table(
        ("group", "topic", "partition", "committed", "end", "lag"),
        [(r.group, r.topic, r.partition, r.committed, r.end, r.lag) for r in lag_rows],
    ))  # fmt: skip
    for group in groups:
        print(f"total lag {group}: {sum(r.lag for r in lag_rows if r.group == group)}")
    return 1 if worker_error else 0


def _ranges(partitions: list[int]) -> str:
    return ",".join(str(p) for p in partitions) or "-"
