"""The scoring engine's latency metrics: every applied event once in the event- and
ingest-to-scored histograms, every delta once in the publication histograms after the
broker acknowledged it, timed from the oldest event that changed its entity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_checkpoint_crash import CONTRACT, Table, engine_over, lane_records, mint
from trustscore_stream.metrics import Metrics


def values(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count(metrics: Metrics, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in values(metrics).items() if n == name and wanted <= ls)


def aged(envelope: dict[str, Any], seconds: float) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(seconds=seconds)
    return {**envelope, "occurred_at": at.isoformat().replace("+00:00", "Z")}


async def test_applied_events_and_delivered_deltas_are_each_observed_once() -> None:
    engine, _ = engine_over(Table())
    metrics = engine.metrics
    # Token 1 changes twice in the window: an event 2 minutes old, then a fresh one.
    batch = [aged(mint("m1", CONTRACT, 1), 120), mint("m2", CONTRACT, 2), mint("m1", CONTRACT, 1)]
    records = lane_records(0, [batch, [mint("m3", CONTRACT, 3)]])
    await engine.fold(records)
    # m1 again is a repeat: dropped by scoring's dedup, not applied, not observed.
    applied = 3
    assert count(metrics, "trustscore_duplicates_dropped_total") == 1
    for name in ("trustscore_event_to_scored_seconds", "trustscore_ingest_to_scored_seconds"):
        assert count(metrics, f"{name}_count") == applied
    assert count(metrics, "trustscore_event_to_scored_seconds_bucket", le="60.0") == applied - 1
    assert count(metrics, "trustscore_ingest_to_scored_seconds_bucket", le="1.0") == applied

    await engine.publish()
    deltas = count(metrics, "trustscore_score_changes_published_total")
    assert deltas > 0
    for _ in range(10):  # the fake broker acknowledges at once; the watcher runs next
        await asyncio.sleep(0)
    assert count(metrics, "trustscore_scored_to_published_seconds_count") == deltas
    assert count(metrics, "trustscore_event_to_published_seconds_count") == deltas
    # Token 1's delta and its collection's (changed by the old event too) count from it.
    old = count(metrics, "trustscore_event_to_published_seconds_bucket", le="60.0")
    assert deltas - old >= 1
    assert count(metrics, "trustscore_scored_to_published_seconds_bucket", le="1.0") == deltas
