"""`trustscore-stream source chain|poll`: wiring of a source process (broker, topics,
metrics endpoint, signals). SIGINT/SIGTERM stop it between steps, after the current
range or poll is published and checkpointed."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from prometheus_client import start_http_server

from trustscore_stream.embedded import bootstrap_from_url
from trustscore_stream.settings import Settings, SettingsError
from trustscore_stream.sources.chain import ChainSource
from trustscore_stream.sources.checkpoint import (
    CHECKPOINTS,
    CheckpointStore,
    checkpoint_topic_spec,
)
from trustscore_stream.sources.metrics import SourceMetrics
from trustscore_stream.sources.poll_config import load_poll_config
from trustscore_stream.sources.poller import run_pollers
from trustscore_stream.sources.publisher import Publisher
from trustscore_stream.sources.settings import ChainSettings
from trustscore_stream.topics import DLQ, EVENTS, topic_specs
from trustscore_stream.topics_admin import ensure_topics

log = logging.getLogger(__name__)


def _bootstrap(settings: Settings) -> str:
    if settings.broker is None:
        raise SettingsError("a source needs TRUSTSCORE_BROKER (the broker the workers read)")
    return bootstrap_from_url(settings.broker)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _serve_metrics(metrics: SourceMetrics, port: int | None) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)


async def run_chain(settings: Settings, chain: ChainSettings) -> int:
    bootstrap = _bootstrap(settings)
    checkpoint_topic = settings.topic(CHECKPOINTS)
    # Create every topic first: the embedded broker would auto-create them with 4 partitions.
    await ensure_topics(
        bootstrap, [*topic_specs(settings), checkpoint_topic_spec(checkpoint_topic)]
    )
    metrics = SourceMetrics()
    _serve_metrics(metrics, chain.metrics_port)
    publisher = Publisher(bootstrap, settings.topic(EVENTS), settings.topic(DLQ))
    checkpoints = CheckpointStore(bootstrap, checkpoint_topic, chain.name)
    source = ChainSource(chain, publisher, checkpoints, metrics)
    stop = _stop_on_signals()
    await publisher.start()
    await checkpoints.start()
    try:
        await source.run(stop)
    finally:
        await source.close()
        await checkpoints.stop()
        await publisher.stop()
    return 0


async def run_poll(settings: Settings, config: Path, metrics_port: int | None) -> int:
    sources = load_poll_config(config)
    bootstrap = _bootstrap(settings)
    await ensure_topics(bootstrap, topic_specs(settings))
    metrics = SourceMetrics()
    _serve_metrics(metrics, metrics_port)
    publisher = Publisher(bootstrap, settings.topic(EVENTS), settings.topic(DLQ))
    stop = _stop_on_signals()
    await publisher.start()
    try:
        log.info("polling %s", ", ".join(s.name for s in sources))
        await run_pollers(sources, publisher, stop, metrics)
    finally:
        await publisher.stop()
    return 0
