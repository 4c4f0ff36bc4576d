"""The one `faust.App` of TrustScore Stream: composition root.

`faust -A trustscore_stream.app worker` finds `app` here. Settings are read from the
environment once, by `create_app()`'s caller; tests build their own apps with their own
settings.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faust
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from trustscore_stream.agents.deliver import DeliveryStage
from trustscore_stream.agents.history import HistoryStage
from trustscore_stream.agents.ingest import IngestStage
from trustscore_stream.agents.lanes import LaneStage
from trustscore_stream.agents.links import LinkStage
from trustscore_stream.agents.notify import NotifyStage
from trustscore_stream.agents.route import RouteStage
from trustscore_stream.agents.score_versions import KafkaHistoryTail
from trustscore_stream.agents.scoring import ScoringEngine
from trustscore_stream.agents.watch import WatchStage
from trustscore_stream.db.engine import create_engine_for
from trustscore_stream.db.migrate import upgrade
from trustscore_stream.embedded import bootstrap_from_url
from trustscore_stream.fetch_wait import use_fetch_wait
from trustscore_stream.live.follower import BroadcastFollower
from trustscore_stream.live.hub import Hub, HubLimits
from trustscore_stream.logs.setup import configure_logging, logging_config
from trustscore_stream.metrics import Metrics
from trustscore_stream.output import BatchingOutput
from trustscore_stream.settings import Settings, load_settings
from trustscore_stream.tables.dedup import DedupStore, declare_dedup_table
from trustscore_stream.tables.entity_state import (
    COMMIT_PREFIX,
    SCORING_DEDUP_PREFIX,
    EntityStore,
    declare_entity_table,
)
from trustscore_stream.tables.rocksdb import bytes_table
from trustscore_stream.tables.watched import WatchIndex, declare_watched_table
from trustscore_stream.topics import Topics, declare_topics
from trustscore_stream.web.health import register_health
from trustscore_stream.web.index import register_index
from trustscore_stream.web.ingest import register_ingest
from trustscore_stream.web.metrics import register_metrics
from trustscore_stream.web.notifications import register_notifications
from trustscore_stream.web.ops import register_ops
from trustscore_stream.web.scores import register_scores
from trustscore_stream.web.stream import register_stream
from trustscore_stream.worker_logging import undo_spinner_log_level

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the app is made of, for views, tests and the CLI to reach."""

    settings: Settings
    topics: Topics
    metrics: Metrics
    dedup: DedupStore
    ingest: IngestStage
    route: RouteStage
    lanes: LaneStage
    scoring: ScoringEngine
    history: HistoryStage
    entities: EntityStore
    engine: Engine
    hub: Hub


def faust_config(settings: Settings) -> dict[str, Any]:
    data_dir = Path(settings.data_dir).resolve()
    config: dict[str, Any] = {
        "broker": settings.broker_url,
        "store": "rocksdb://",
        "datadir": str(data_dir / "worker"),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        "web_host": settings.web_host,
        # Debug views would expose table contents and Faust's own metrics on a public port.
        "web_tables_enabled": False,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
        # We look owners up in-process; the /router/ view would list every worker publicly.
        "web_router_enabled": False,
        "web_application_options": {"client_max_size": 32 * 1024 * 1024},
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_rebalance_timeout": settings.rebalance_timeout_s,
        "table_standby_replicas": 1,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "producer_linger": 0.005,
        "stream_wait_empty": False,
        "consumer_auto_offset_reset": "earliest",
        "loghandlers": [],
        # Our JSON lines (logs/setup.py) for Faust's, mode's and aiokafka's loggers too.
        "logging_config": logging_config(settings),
    }
    if settings.embedded_broker:
        # Tansu 0.6.0 reports a wrong end offset after a multi-record batch, which breaks
        # table recovery; one record per batch avoids it (docs/operations.md).
        config["producer_max_batch_size"] = 1
    return config


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    (Path(settings.data_dir) / "worker").mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.app_id, autodiscover=False, **faust_config(settings))
    use_fetch_wait(app, settings.fetch_wait_ms)
    topics = declare_topics(app, settings)
    metrics = Metrics()
    dedup_table = declare_dedup_table(app, settings)
    dedup = DedupStore(dedup_table, settings, generation=lambda: app.consumer_generation_id)
    metrics.dedup_ids.set_function(dedup.size)
    ingest = IngestStage(settings, topics, metrics, BatchingOutput(settings.broker_url))
    route_output = BatchingOutput(settings.broker_url)
    route = RouteStage(settings, topics, dedup, metrics, route_output)
    engine = create_engine_for(settings.effective_database_url)
    generation = lambda: int(app.consumer_generation_id)  # noqa: E731
    entity_table = declare_entity_table(app, settings)
    entities = EntityStore(entity_table, settings, generation)
    # The scoring stage's dedup memory lives in the state table, checkpointed with it.
    scoring_dedup = DedupStore(
        entity_table, settings, generation, prefix=SCORING_DEDUP_PREFIX, commit_prefix=COMMIT_PREFIX
    )
    watched = WatchIndex(declare_watched_table(app, settings), generation)
    output = BatchingOutput(settings.broker_url)
    app.service(output)  # type: ignore[arg-type]  # Faust takes instances too
    # Restored partitions read back the versions they already published (agents/score_versions.py).
    history_tail = KafkaHistoryTail(
        bootstrap_from_url(settings.broker_url), topics.history.get_topic_name()
    )
    scoring = ScoringEngine(
        settings,
        topics,
        metrics,
        entities,
        scoring_dedup,
        watched,
        generation,
        output,
        history_tail,
    )
    lanes = LaneStage(settings, topics, metrics, engine=scoring)
    history = HistoryStage(settings, topics, metrics, engine)
    if "ingest" in settings.stages:
        ingest.register(app)
    if "route" in settings.stages:
        app.service(route_output)  # type: ignore[arg-type]  # Faust takes instances too
        route.register(app)
    if "lanes" in settings.stages:
        lanes.register(app)
        history.register(app)
        WatchStage(settings, topics, watched).register(app)
        LinkStage(settings, topics, metrics, lanes).register(app)
    if "notify" in settings.stages:
        subscriptions = bytes_table(
            app, settings, "subscriptions", "Subscriptions per entity (notifier)."
        )
        watching = bytes_table(
            app, settings, "watching", "Significance and pacing per subscription and entity."
        )
        notify = NotifyStage(settings, topics, metrics, engine, subscriptions, watching, output)
        notify.register(app)
        DeliveryStage(settings, topics, metrics, engine, output, notify.push).register(app)
    hub = Hub(
        slots=2 * settings.partitions,
        first_user_slot=settings.partitions,  # the follower's order: deltas, notifications
        limits=HubLimits(
            queue_frames=settings.sse_queue_frames,
            streams_per_user=settings.sse_streams_per_user,
            streams_total=settings.sse_streams_total,
            replay_s=settings.sse_replay_s,
            replay_entries=settings.sse_replay_entries,
        ),
        on_disconnect=lambda reason: metrics.sse_disconnects.labels(reason).inc(),
    )
    follower = BroadcastFollower(
        settings.broker_url,
        topics.deltas.get_topic_name(),
        topics.notifications.get_topic_name(),
        settings.partitions,
        hub,
        metrics,
    )
    app.service(follower)  # type: ignore[arg-type]  # Faust takes instances too
    runtime = Runtime(
        settings,
        topics,
        metrics,
        dedup,
        ingest,
        route,
        lanes,
        scoring,
        history,
        entities,
        engine,
        hub,
    )
    register_index(app, runtime)
    register_health(app, runtime)
    register_metrics(app, runtime)
    register_ingest(app, runtime)
    register_scores(app, runtime)
    register_stream(app, runtime)
    register_notifications(app, runtime)
    register_ops(app, runtime)
    # Topics that are only written to are not declared by subscription: create them at start.
    app.task(_declare_send_only_topics(topics))
    app.task(_undo_spinner(settings))
    app.task(_migrate_database(settings, history))
    return app, runtime


def _migrate_database(settings: Settings, history: HistoryStage) -> Any:
    async def migrate() -> None:
        # The data dir (home of the default SQLite file) was created by create_app. A
        # database that is down at start is waited for: the history writer holds its
        # batches (and the worker reports not ready) until the schema is in place.
        delay = settings.retry_base_delay_s
        while True:
            try:
                await asyncio.to_thread(upgrade, settings.effective_database_url)
            except SQLAlchemyError as exc:
                log.warning("database not ready (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(settings.retry_max_delay_s, delay * 2)
            else:
                history.db_ready.set()
                return

    return migrate


def _undo_spinner(settings: Settings) -> Any:
    async def undo() -> None:
        await undo_spinner_log_level(logging.getLevelName(settings.log_level))

    return undo


def _declare_send_only_topics(topics: Topics) -> Any:
    async def declare() -> None:
        for topic in topics.all():
            await topic.maybe_declare()

    return declare


def _settings_for_worker() -> Settings:
    """Settings of a worker started as `faust -A trustscore_stream.app worker`. Without
    TRUSTSCORE_BROKER it starts the embedded broker (CONTRACT §7), stopped when the process
    exits; that broker keeps nothing, so the worker starts with fresh local state."""
    settings = load_settings()
    # Lines logged before Faust's worker applies the same configuration are JSON too.
    configure_logging(settings)
    if settings.broker is not None:
        return settings
    from trustscore_stream.embedded import EmbeddedBroker

    broker = EmbeddedBroker(log_dir=Path(settings.data_dir) / "logs").start()
    shutil.rmtree(Path(settings.data_dir) / "worker", ignore_errors=True)
    log.warning("TRUSTSCORE_BROKER is unset: started an embedded broker at %s", broker.url)
    return replace(settings, broker=broker.url, embedded_broker=True)


app, runtime = create_app(_settings_for_worker())
