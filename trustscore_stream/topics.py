"""Every topic the app reads or writes, declared once with the configured partition count.

All are `internal=True` so Faust creates them before subscribing: the embedded broker would
otherwise auto-create an unknown topic with 4 partitions and silently break
co-partitioning. Names follow CONTRACT §2/§6; `TRUSTSCORE_TOPIC_PREFIX` namespaces them.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from trustscore_stream.codecs import OrjsonCodec
from trustscore_stream.events.classification import LANES, Lane
from trustscore_stream.settings import Settings
from trustscore_stream.topics_admin import TopicSpec

EVENTS = "trustscore-events"
DLQ = "trustscore-events-dlq"
RETRY = "trustscore-events-retry"
INGEST = "trustscore-ingest"
DELTAS = "trustscore-deltas"
NOTIFICATIONS = "trustscore-notifications"
WATCH = "trustscore-watch"
HISTORY = "trustscore-score-history"
LINKS = "trustscore-wallet-links"
SUBSCRIPTIONS = "trustscore-subscriptions"
DELIVERIES_DLQ = "trustscore-deliveries-dlq"


def lane_topic_name(lane: Lane) -> str:
    return f"trustscore-lane-{lane}"


@dataclass(frozen=True)
class Topics:
    events: faust.TopicT  # CONTRACT §2 input: envelopes or batch records
    dlq: faust.TopicT  # CONTRACT §2 dead letters
    retry: faust.TopicT  # routed batches waiting for another attempt
    ingest: faust.TopicT  # validated batches, partitioned by collection
    lanes: dict[Lane, faust.TopicT]  # deduplicated batches by priority, by collection
    deltas: faust.TopicT  # CONTRACT §6
    notifications: faust.TopicT  # CONTRACT §6
    watch: faust.TopicT  # watcher count changes, on the entity's partition
    history: faust.TopicT  # published score versions on their way to the database
    links: faust.TopicT  # collection reports and wallet summaries between partitions
    subscriptions: faust.TopicT  # subscription changes, on the entity's partition
    deliveries_dlq: faust.TopicT  # notification deliveries that ran out of attempts

    def all(self) -> list[faust.TopicT]:
        return [
            self.events,
            self.dlq,
            self.retry,
            self.ingest,
            *self.lanes.values(),
            self.deltas,
            self.notifications,
            self.watch,
            self.history,
            self.links,
            self.subscriptions,
            self.deliveries_dlq,
        ]


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    codec = OrjsonCodec()

    def topic(name: str, *, raw: bool = True) -> faust.TopicT:
        return app.topic(
            settings.topic(name),
            partitions=settings.partitions,
            replicas=settings.replication,
            internal=True,
            key_type=bytes,
            value_type=bytes if raw else None,
            key_serializer="raw",
            value_serializer="raw" if raw else codec,
        )

    return Topics(
        events=topic(EVENTS),
        dlq=topic(DLQ, raw=False),
        retry=topic(RETRY),
        ingest=topic(INGEST),
        lanes={lane: topic(lane_topic_name(lane)) for lane in LANES},
        # Written as encoded JSON and read as bytes (the notifier decodes with msgspec).
        deltas=topic(DELTAS),
        notifications=topic(NOTIFICATIONS),
        watch=topic(WATCH),
        history=topic(HISTORY),
        links=topic(LINKS),
        subscriptions=topic(SUBSCRIPTIONS),
        deliveries_dlq=topic(DELIVERIES_DLQ),
    )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the app, for creation before any producer or worker touches them."""
    names = [EVENTS, DLQ, RETRY, INGEST, DELTAS, NOTIFICATIONS, WATCH, HISTORY, LINKS]
    names += [SUBSCRIPTIONS, DELIVERIES_DLQ]
    names += [lane_topic_name(lane) for lane in LANES]
    return [TopicSpec(settings.topic(n), settings.partitions, settings.replication) for n in names]
