"""Prometheus metrics of one worker (served at GET /metrics). Labels are bounded: event
types, sources, reasons, lanes; never an entity or event id."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from trustscore_stream.batched_histogram import BatchedHistogram
from trustscore_stream.events.classification import LANES

# Latency from event time: events may be hours old (backfills, a source catching up), so
# these reach an hour; the end-to-end SLO (p95 < 60 s) sits in the middle of the range.
EVENT_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# Latency inside the pipeline (from ingest, from scoring).
PIPELINE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records_received = Counter(
            "trustscore_records_received_total",
            "Kafka records read from the input topic",
            ["shape"],
            registry=r,
        )
        self.events_received = Counter(
            "trustscore_events_received_total",
            "Valid envelopes accepted by ingest",
            ["type", "source"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "trustscore_dead_lettered_total",
            "Envelopes or records sent to the DLQ",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "trustscore_duplicates_dropped_total",
            "Envelopes dropped because their event_id was already processed",
            registry=r,
        )
        self.routed = Counter(
            "trustscore_lane_events_total",
            "Deduplicated events written to a priority lane",
            ["lane"],
            registry=r,
        )
        self.lane_records = Counter(
            "trustscore_lane_records_total",
            "Batch records written to the lane topics",
            ["lane"],
            registry=r,
        )
        self.processed = Counter(
            "trustscore_lane_events_processed_total",
            "Events taken from a lane by the processing stage",
            ["lane"],
            registry=r,
        )
        self.lane_wait = BatchedHistogram(  # per event, tallied per lane batch
            "trustscore_lane_wait_seconds",
            "Time from ingest to being taken from a lane",
            ["lane"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.retries = Counter(
            "trustscore_retries_total",
            "Batches re-queued on the retry topic after a transient error",
            ["stage"],
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "trustscore_checkpoint_seconds",
            "Duration of a stage checkpoint (sends + table writes + acks)",
            ["stage"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.table_writes = Counter(
            "trustscore_table_writes_total",
            "Changelog-backed table writes",
            ["table"],
            registry=r,
        )
        self.deltas = Counter(
            "trustscore_score_changes_published_total",
            "Score changes broadcast on the deltas topic (significant ones)",
            registry=r,
        )
        self.versions = Counter(
            "trustscore_score_versions_total",
            "New score versions (every change of a score, written to history)",
            registry=r,
        )
        self.conflated = Counter(
            "trustscore_score_changes_conflated_total",
            "Entity changes merged into a change already waiting in the conflation window",
            registry=r,
        )
        self.publishes = Counter(
            "trustscore_scoring_publishes_total",
            "Scoring publishes (changed entities scored, versions and deltas sent), by what "
            "ended the conflation window: window (caught up), backlog_max (input was waiting, "
            "the window stretched to its maximum) or checkpoint",
            ["trigger"],
            registry=r,
        )
        self.checkpoints = Counter(
            "trustscore_checkpoints_total",
            "Scoring checkpoints (state written, input acknowledged)",
            registry=r,
        )
        self.history_rows = Counter(
            "trustscore_history_rows_written_total",
            "Score versions written to the database (new rows; replays are skipped)",
            registry=r,
        )
        self.dependants_rescored = Counter(
            "trustscore_dependants_rescored_total",
            "Entities given a new score version because state they depend on changed: watched "
            "NFTs of a changed collection, and what a received creator or wallet summary concerns",
            registry=r,
        )
        self.links = Counter(
            "trustscore_links_total",
            "Cross-partition links: collection reports and wallet summaries sent, applied, "
            "or ignored as repeats",
            ["kind", "outcome"],
            registry=r,
        )
        self.db_failures = Counter(
            "trustscore_db_write_failures_total",
            "Database writes that failed (the batch is retried)",
            registry=r,
        )
        self.db_write_seconds = Histogram(
            "trustscore_db_write_seconds",
            "Duration of one batched database write (score history rows, notifications)",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.sse_clients = Gauge(
            "trustscore_sse_clients", "Open SSE streams on this worker", registry=r
        )
        self.sse_disconnects = Counter(
            "trustscore_sse_disconnects_total",
            "SSE streams ended, by reason: client (the client went away), slow (the worker "
            "cut it off: its queue overflowed), shutdown (the worker stopped)",
            ["reason"],
            registry=r,
        )
        self.sse_rejected = Counter(
            "trustscore_sse_rejected_total",
            "SSE stream requests refused (unauthorized, too_many_streams, invalid)",
            ["reason"],
            registry=r,
        )
        self.sse_replayed = Counter(
            "trustscore_sse_replayed_frames_total",
            "Frames replayed to reconnecting clients (resets included)",
            registry=r,
        )
        self.sse_skipped = Counter(
            "trustscore_sse_skipped_records_total",
            "Delta or notification records the live stream could not use (no key, no JSON)",
            registry=r,
        )
        self.sse_connections = Counter(
            "trustscore_sse_connections_total",
            "SSE streams opened on this worker (accepted and started)",
            registry=r,
        )
        self.sse_dispatch_lag = Histogram(
            "trustscore_sse_dispatch_lag_seconds",
            "Delta (or notification) to SSE delivered: from the record's broker timestamp (its "
            "publication) to its dispatch into this worker's stream queues",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.sse_buffered = Gauge(
            "trustscore_sse_replay_entries", "Records held in the SSE replay buffer", registry=r
        )
        self.notifications = Counter(
            "trustscore_notifications_total",
            "Notifications decided by the notifier (sent now or as a digest)",
            ["kind", "severity"],
            registry=r,
        )
        self.notifications_created = Counter(
            "trustscore_notifications_recorded_total",
            "Notifications newly written to the database (replays excluded)",
            registry=r,
        )
        self.escalations = Counter(
            "trustscore_notification_escalations_total",
            "Unread critical notifications sent again on the next channel",
            registry=r,
        )
        self.deliveries = Counter(
            "trustscore_notification_deliveries_total",
            "Delivery attempts by notification kind, channel and result (sent, retry, dead)",
            ["kind", "channel", "result"],
            registry=r,
        )
        self.dedup_ids = Gauge(
            "trustscore_dedup_ids",
            "Event ids held in the dedup memory of this worker",
            registry=r,
        )

        # -- Latency through the pipeline, lag and state size --------------------------------
        # Per-event histograms are tallied per batch (batched_histogram.py): exact counts
        # without a locked observe per event on the hot path.
        lanes = [(lane,) for lane in LANES]
        self.event_to_scored = BatchedHistogram(
            "trustscore_event_to_scored_seconds",
            "From an event's occurred_at to the scoring stage applying it to state (each "
            "applied event once; repeats dropped by scoring's dedup are not counted)",
            ["lane"],
            buckets=EVENT_TIME_BUCKETS,
            registry=r,
            initial=lanes,
        )
        self.ingest_to_scored = BatchedHistogram(
            "trustscore_ingest_to_scored_seconds",
            "From ingest accepting an event to the scoring stage applying it to state (each "
            "applied event once)",
            ["lane"],
            buckets=PIPELINE_BUCKETS,
            registry=r,
            initial=lanes,
        )
        self.scored_to_published = BatchedHistogram(
            "trustscore_scored_to_published_seconds",
            "Per delta delivered to the broker on trustscore-deltas: from the first change of "
            "its entity in the conflation window being applied by scoring to the broker "
            "acknowledging the delta (conflation wait, scoring and produce)",
            buckets=PIPELINE_BUCKETS,
            registry=r,
        )
        self.event_to_published = BatchedHistogram(
            "trustscore_event_to_published_seconds",
            "Per delta delivered to the broker on trustscore-deltas: from the occurred_at of "
            "the oldest event that changed its entity since the previous publication to the "
            "broker acknowledging the delta (end-to-end; deltas caused only by a "
            "cross-partition link carry no event time and are not counted)",
            buckets=EVENT_TIME_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "trustscore_consumer_lag_records",
            "Records in the broker this worker has not fetched yet: high watermark minus the "
            "consumer position, per assigned topic partition (changelogs excluded), from "
            "the consumers' last fetch; refreshed every few seconds",
            ["topic", "partition"],
            registry=r,
        )
        self.lane_queue_depth = Gauge(
            "trustscore_lane_queue_depth",
            "Events read from a lane (or due from the retry topic) and queued for the "
            "scoring processor, not yet applied",
            ["lane"],
            registry=r,
        )
        self.table_keys = Gauge(
            "trustscore_table_keys",
            "Keys held in a changelog table's local RocksDB stores on this worker (active "
            "and standby partitions; RocksDB's estimate); refreshed every few seconds",
            ["table"],
            registry=r,
        )
