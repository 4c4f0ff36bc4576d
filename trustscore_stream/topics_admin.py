"""Topic administration and offset look-ups that work on the embedded broker (and on Kafka).

Why this exists:

- Tansu auto-creates unknown topics with 4 partitions, even when a metadata request merely
  names them; co-partitioning with 8-partition changelogs then breaks silently. So every topic
  is created explicitly here, and look-ups ask for *all* topics' metadata instead of naming one.
- Some clients (e.g. Quix Streams) need ``retention.ms`` and ``retention.bytes`` present in a
  topic's config on this broker, so they are always set (to Kafka's own defaults unless the
  spec says otherwise, so behaviour on a real cluster is unchanged).
- The admin call ``list_consumer_group_offsets`` drops the connection on Tansu 0.6.0;
  ``AIOKafkaConsumer(group_id=...).committed(tp)`` works, so :func:`committed_offsets` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_TOPIC_CONFIG",
    "TopicCreationError",
    "TopicMismatch",
    "TopicSpec",
    "UnknownTopic",
    "committed_offsets",
    "describe_partitions",
    "end_offsets",
    "ensure_topics",
]

# Kafka's broker defaults (7 days, unlimited); spec.config overrides them.
DEFAULT_TOPIC_CONFIG: Mapping[str, str] = MappingProxyType(
    {"retention.ms": "604800000", "retention.bytes": "-1"}
)

_TOPIC_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


@dataclass(frozen=True)
class TopicSpec:
    """A topic as we want it to exist."""

    name: str
    partitions: int
    replication: int = 1
    # Not part of the hash (a mapping is unhashable); still compared by ==.
    config: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("topic name must not be empty")
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be >= 1, got {self.partitions}")
        if self.replication < 1:
            raise ValueError(f"{self.name}: replication must be >= 1, got {self.replication}")
        # Copy, so a caller mutating its dict cannot change a frozen spec.
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    @classmethod
    def compacted(cls, name: str, partitions: int, replication: int = 1) -> TopicSpec:
        """A changelog-style topic (``cleanup.policy=compact``)."""
        return cls(name, partitions, replication, {"cleanup.policy": "compact"})

    def topic_config(self) -> dict[str, str]:
        """The configs sent on creation: the defaults overlaid with this spec's."""
        return {**DEFAULT_TOPIC_CONFIG, **self.config}


class TopicMismatch(RuntimeError):
    """An existing topic's partition count differs from the spec (co-partitioning would break)."""

    def __init__(self, name: str, expected: int, actual: int) -> None:
        super().__init__(
            f"topic {name!r} exists with {actual} partitions but {expected} are required; "
            "delete it (or fix the spec): a different count silently breaks co-partitioning"
        )
        self.name = name
        self.expected = expected
        self.actual = actual


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic for a reason other than "already exists"."""

    def __init__(self, name: str, error_code: int, message: str | None) -> None:
        from aiokafka.errors import for_code

        kind = for_code(error_code).__name__
        super().__init__(f"creating topic {name!r} failed: {kind} ({error_code}): {message}")
        self.name = name
        self.error_code = error_code


class UnknownTopic(LookupError):
    """The topic does not exist (and was deliberately not auto-created)."""


async def _partition_counts(admin: Any) -> dict[str, int]:
    # topics=None asks for every topic; naming a topic would auto-create it on Tansu.
    topics: list[dict[str, Any]] = await admin.describe_topics(None)
    counts: dict[str, int] = {}
    for topic in topics:
        # On Kafka a topic being created may show an error (e.g. LEADER_NOT_AVAILABLE) or no
        # partitions yet: treat it as not there so the caller waits for it.
        if topic["error_code"] == 0 and topic["partitions"]:
            counts[str(topic["topic"])] = len(topic["partitions"])
    return counts


def _unique_specs(specs: Sequence[TopicSpec]) -> list[TopicSpec]:
    by_name: dict[str, TopicSpec] = {}
    for spec in specs:
        seen = by_name.setdefault(spec.name, spec)
        if seen.partitions != spec.partitions:
            raise ValueError(
                f"topic {spec.name!r} specified twice with {seen.partitions} and "
                f"{spec.partitions} partitions"
            )
    return list(by_name.values())


def _check_counts(specs: Iterable[TopicSpec], counts: Mapping[str, int]) -> None:
    for spec in specs:
        actual = counts.get(spec.name)
        if actual is not None and actual != spec.partitions:
            raise TopicMismatch(spec.name, spec.partitions, actual)


def _admin(bootstrap: str, timeout: float) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000))
    )


# The `timeout` parameters (ASYNC109) also size the clients' request timeouts, which a caller's
# asyncio.timeout cannot do; each call is one bounded admin exchange.
async def ensure_topics(
    bootstrap: str,
    specs: Sequence[TopicSpec],
    timeout: float = 15.0,
) -> None:
    """Create the missing topics; check the partition count of those that exist.

    "Already exists" (also from a concurrent creator) is success when the partition count
    matches; a different count raises :class:`TopicMismatch`. Returns once metadata lists every
    topic. Configs of existing topics are not checked or altered.
    """
    from aiokafka.admin import NewTopic

    wanted = _unique_specs(specs)
    if not wanted:
        return
    try:
        async with asyncio.timeout(timeout):
            admin = _admin(bootstrap, timeout)
            try:
                await admin.start()
                counts = await _partition_counts(admin)
                _check_counts(wanted, counts)
                missing = [spec for spec in wanted if spec.name not in counts]
                if missing:
                    response = await admin.create_topics(
                        [
                            NewTopic(
                                spec.name,
                                spec.partitions,
                                spec.replication,
                                topic_configs=spec.topic_config(),
                            )
                            for spec in missing
                        ],
                        timeout_ms=max(1000, int(timeout * 1000)),
                    )
                    for entry in response.topic_errors:
                        name, code = str(entry[0]), int(entry[1])
                        message = entry[2] if len(entry) > 2 else None
                        if code not in (0, _TOPIC_ALREADY_EXISTS):
                            raise TopicCreationError(name, code, message)
                # Creation can be asynchronous on Kafka; a racing creator may have used
                # another count. Wait until every topic is visible, checking counts as we go.
                while True:
                    counts = await _partition_counts(admin)
                    _check_counts(wanted, counts)
                    if all(spec.name in counts for spec in wanted):
                        return
                    await asyncio.sleep(0.05)
            finally:
                await admin.close()
    except TimeoutError as exc:
        names = ", ".join(spec.name for spec in wanted)
        raise TimeoutError(
            f"ensure_topics({names}) on {bootstrap} did not finish within {timeout:g} s"
        ) from exc


async def describe_partitions(
    bootstrap: str,
    names: Iterable[str],
    timeout: float = 15.0,
) -> dict[str, int]:
    """Partition count of each named topic that exists; missing topics are left out.

    Never auto-creates a topic (it reads all topics' metadata rather than naming them).
    """
    wanted = set(names)
    async with asyncio.timeout(timeout):
        admin = _admin(bootstrap, timeout)
        try:
            await admin.start()
            counts = await _partition_counts(admin)
        finally:
            await admin.close()
    return {name: count for name, count in counts.items() if name in wanted}


async def end_offsets(
    bootstrap: str,
    topic: str,
    timeout: float = 15.0,
) -> dict[int, int]:
    """ListOffsets(latest) for every partition of ``topic``: ``{partition: end offset}``.

    On Tansu 0.6.0 this is wrong after a multi-record batch (see ``embedded.py``); a fetch's
    high watermark is right. Raises :class:`UnknownTopic` rather than auto-creating the topic.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async with asyncio.timeout(timeout):
        counts = await describe_partitions(bootstrap, [topic], timeout)
        if topic not in counts:
            raise UnknownTopic(topic)
        partitions = [TopicPartition(topic, p) for p in range(counts[topic])]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=max(1000, int(timeout * 1000)),
        )
        try:
            await consumer.start()
            offsets: dict[Any, int] = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
    return {int(tp.partition): int(offset) for tp, offset in offsets.items()}


async def committed_offsets(
    bootstrap: str,
    group_id: str,
    topic: str,
    partitions: Iterable[int],
    timeout: float = 15.0,
) -> dict[int, int | None]:
    """The group's committed offset per partition (None where it never committed).

    Uses ``AIOKafkaConsumer.committed`` (an OffsetFetch) without joining the group; the admin
    ``list_consumer_group_offsets`` drops the connection on Tansu 0.6.0.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    result: dict[int, int | None] = {}
    async with asyncio.timeout(timeout):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            request_timeout_ms=max(1000, int(timeout * 1000)),
        )
        try:
            await consumer.start()
            for partition in partitions:
                committed = await consumer.committed(TopicPartition(topic, partition))
                result[partition] = None if committed is None else int(committed)
        finally:
            await consumer.stop()
    return result
