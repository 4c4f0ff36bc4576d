"""deploy/prometheus: promtool accepts the config and the rules, every alert is complete and
has a runbook, every metric it names is one the app exports, and the rule expressions fire
(and stay quiet) on synthetic series, evaluated by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.facts import (
    DEPLOY,
    REQUIRED_METRICS,
    ROOT,
    markdown_anchors,
    promql_metric_names,
    registry_series_names,
    tool,
    unknown_metrics,
)

PROMETHEUS = DEPLOY / "prometheus"
RUNBOOK = ROOT / "docs" / "operations.md"


def rules() -> list[dict[str, Any]]:
    with (PROMETHEUS / "alerts.yml").open() as file:
        document = yaml.safe_load(file)
    return [rule for group in document["groups"] for rule in group["rules"]]


def expr_of(alert: str) -> str:
    (rule,) = [rule for rule in rules() if rule.get("alert") == alert]
    return str(rule["expr"])


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool", "prometheus"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_the_config_and_finds_the_rule_file() -> None:
    done = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


def test_the_metric_name_parser() -> None:
    expr = (
        'sum by (le, lane) (rate(a_bucket{lane="x",b="1"}[5m])) / on (instance) '
        "b_total offset 1h > 1e3 and absent(up == 1) or "
        "histogram_quantile(0.95, c[$__rate_interval])"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total", "up", "c"}


def test_every_alert_is_complete_with_a_runbook() -> None:
    anchors = markdown_anchors(RUNBOOK)
    alerts = [rule for rule in rules() if "alert" in rule]
    assert len(alerts) >= 10
    names = [rule["alert"] for rule in alerts]
    assert len(set(names)) == len(names), "alert names are unique"
    for rule in alerts:
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for:`, a single bad scrape would page"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/operations.md" and anchor == name.lower(), name
        assert anchor in anchors, f"{name}: no heading {name} in docs/operations.md"


def test_the_required_alerts_exist() -> None:
    names = {rule.get("alert") for rule in rules()}
    for required in (
        "TrustScoreWorkerDown",
        "TrustScoreConsumerLagHigh",
        "TrustScoreEventToScoreSLO",
        "TrustScoreEndToEndSLO",
        "TrustScoreDeadLetterRateHigh",
        "TrustScoreNoScoringProgress",
        "TrustScoreDatabaseWriteFailures",
        "TrustScoreSSESlowDisconnects",
    ):
        assert required in names
    assert "up{" in expr_of("TrustScoreWorkerDown")
    assert "> 30" in expr_of("TrustScoreEventToScoreSLO")
    assert "> 60" in expr_of("TrustScoreEndToEndSLO")


def test_every_metric_in_the_rules_exists_in_the_app() -> None:
    used: set[str] = set()
    for rule in rules():
        used |= promql_metric_names(str(rule["expr"]))
    assert len(used) >= 10
    assert not unknown_metrics(used), (
        f"alerts.yml names metrics that trustscore_stream/metrics.py does not define: "
        f"{sorted(unknown_metrics(used))}"
    )


def test_the_latency_and_lag_metrics_exist() -> None:
    missing = [name for name in REQUIRED_METRICS if name not in registry_series_names()]
    assert not missing, f"trustscore_stream/metrics.py lacks {missing}"


# Each case: an alert, input series (promtool's expanding notation, one sample a minute),
# the evaluation time, and the series its expression must return there (labels and value);
# none for the cases where it must stay quiet.
CASES: list[tuple[str, dict[str, str], str, list[tuple[str, float]]]] = [
    (
        "TrustScoreWorkerDown",
        {
            'up{job="trustscore",instance="worker-1"}': "1 1 0x8",
            'up{job="trustscore",instance="worker-2"}': "1x10",
        },
        "5m",
        [('up{job="trustscore",instance="worker-1"}', 0)],
    ),
    (
        "TrustScoreNoWorkers",
        {'up{job="trustscore",instance="worker-1"}': "0x10"},
        "5m",
        [("{}", 1)],
    ),
    (
        # The same partition reported by two workers (mid-rebalance) counts once.
        "TrustScoreConsumerLagHigh",
        {
            'trustscore_consumer_lag_records{instance="w1",topic="t",partition="0"}': "8000x10",
            'trustscore_consumer_lag_records{instance="w2",topic="t",partition="0"}': "8000x10",
            'trustscore_consumer_lag_records{instance="w1",topic="t",partition="1"}': "3000x10",
            'trustscore_consumer_lag_records{instance="w1",topic="u",partition="0"}': "500x10",
        },
        "5m",
        [('{topic="t"}', 11000)],
    ),
    (
        # All of lane "normal" between 30 and 60 s: p95 = 30 + 0.95 * 30; lane "critical"
        # under 10 s stays quiet.
        "TrustScoreEventToScoreSLO",
        {
            'trustscore_event_to_scored_seconds_bucket{lane="normal",le="10"}': "0x20",
            'trustscore_event_to_scored_seconds_bucket{lane="normal",le="30"}': "0x20",
            'trustscore_event_to_scored_seconds_bucket{lane="normal",le="60"}': "0+60x20",
            'trustscore_event_to_scored_seconds_bucket{lane="normal",le="+Inf"}': "0+60x20",
            'trustscore_event_to_scored_seconds_bucket{lane="critical",le="10"}': "0+60x20",
            'trustscore_event_to_scored_seconds_bucket{lane="critical",le="30"}': "0+60x20",
            'trustscore_event_to_scored_seconds_bucket{lane="critical",le="60"}': "0+60x20",
            'trustscore_event_to_scored_seconds_bucket{lane="critical",le="+Inf"}': "0+60x20",
        },
        "10m",
        [('{lane="normal"}', 58.5)],
    ),
    (
        "TrustScoreEndToEndSLO",
        {
            'trustscore_event_to_published_seconds_bucket{le="60"}': "0x20",
            'trustscore_event_to_published_seconds_bucket{le="120"}': "0+60x20",
            'trustscore_event_to_published_seconds_bucket{le="+Inf"}': "0+60x20",
        },
        "10m",
        [("{}", 117)],
    ),
    (
        # 1 dead letter/s against 4 valid events/s: 20 % of the input.
        "TrustScoreDeadLetterRateHigh",
        {
            'trustscore_dead_lettered_total{reason="invalid_json"}': "0+60x20",
            'trustscore_events_received_total{type="sale",source="chain"}': "0+240x20",
        },
        "15m",
        [("{}", 1)],
    ),
    (
        "TrustScoreEventsDroppedFromScoring",
        {
            'trustscore_dead_lettered_total{reason="retries_exhausted"}': "0 0 0 5x10",
            'trustscore_dead_lettered_total{reason="invalid_json"}': "0+10x12",
        },
        "6m",
        [('{reason="retries_exhausted"}', 5)],
    ),
    (
        "TrustScoreNoScoringProgress",
        {
            'trustscore_events_received_total{type="sale",source="chain"}': "0+600x20",
            'trustscore_lane_events_processed_total{lane="normal"}': "100x20",
        },
        "15m",
        [("{}", 10)],
    ),
    (
        "TrustScoreCheckpointsStalled",
        {
            'trustscore_lane_events_processed_total{instance="w1",lane="normal"}': "0+600x20",
            'trustscore_checkpoints_total{instance="w1"}': "7x20",
            'trustscore_lane_events_processed_total{instance="w2",lane="normal"}': "0+600x20",
            'trustscore_checkpoints_total{instance="w2"}': "0+12x20",
        },
        "15m",
        [('{instance="w1"}', 10)],
    ),
    (
        "TrustScoreDatabaseWriteFailures",
        {
            'trustscore_db_write_failures_total{instance="w1"}': "0+60x20",
            'trustscore_db_write_failures_total{instance="w2"}': "3x20",
        },
        "10m",
        [('{instance="w1"}', 1)],
    ),
    (
        "TrustScoreSSESlowDisconnects",
        {
            'trustscore_sse_disconnects_total{instance="w1",reason="slow"}': "0+60x20",
            'trustscore_sse_disconnects_total{instance="w1",reason="shutdown"}': "0+100x20",
            'trustscore_sse_disconnects_total{instance="w2",reason="slow"}': "0+6x20",
        },
        "10m",
        [('{instance="w1"}', 60)],
    ),
    (
        "TrustScoreNotificationDeliveriesDead",
        {
            'trustscore_notification_deliveries_total{channel="webhook",result="dead"}': (
                "0 0 0 1 2 3 4 5 6 7 8 9"
            ),
            'trustscore_notification_deliveries_total{channel="email",result="sent"}': "0+9x11",
        },
        "11m",
        [('{channel="webhook"}', 9)],
    ),
    # Quiet cases.
    (
        "TrustScoreNoWorkers",
        {
            'up{job="trustscore",instance="worker-1"}': "0x10",
            'up{job="trustscore",instance="worker-2"}': "1x10",
        },
        "5m",
        [],
    ),
    (
        "TrustScoreEndToEndSLO",
        {
            'trustscore_event_to_published_seconds_bucket{le="30"}': "0+60x20",
            'trustscore_event_to_published_seconds_bucket{le="60"}': "0+60x20",
            'trustscore_event_to_published_seconds_bucket{le="+Inf"}': "0+60x20",
        },
        "10m",
        [],
    ),
    (
        # 0.5 dead letters/s against 100 valid events/s: 0.5 %.
        "TrustScoreDeadLetterRateHigh",
        {
            'trustscore_dead_lettered_total{reason="invalid_json"}': "0+30x20",
            'trustscore_events_received_total{type="sale",source="chain"}': "0+6000x20",
        },
        "15m",
        [],
    ),
    (
        "TrustScoreNoScoringProgress",
        {
            'trustscore_events_received_total{type="sale",source="chain"}': "0+600x20",
            'trustscore_lane_events_processed_total{lane="normal"}': "0+600x20",
        },
        "15m",
        [],
    ),
    (
        "TrustScoreConsumerLagGrowing",
        {
            'trustscore_consumer_lag_records{topic="t",partition="0"}': "50000-100x60",
        },
        "45m",
        [],
    ),
    (
        "TrustScoreConsumerLagGrowing",
        {
            'trustscore_consumer_lag_records{topic="t",partition="0"}': "1000+100x60",
        },
        "45m",
        [('{topic="t"}', 5500)],
    ),
]


@pytest.mark.parametrize(
    ("alert", "series", "at", "expected"),
    CASES,
    ids=[f"{alert}-{'fires' if expected else 'quiet'}" for alert, _, _, expected in CASES],
)
def test_alert_expression_on_synthetic_series(
    tmp_path: Path,
    alert: str,
    series: dict[str, str],
    at: str,
    expected: list[tuple[str, float]],
) -> None:
    test_file = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": expr_of(alert),
                        "eval_time": at,
                        "exp_samples": [{"labels": labels, "value": v} for labels, v in expected],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "alert_test.yml"
    path.write_text(yaml.safe_dump(test_file, sort_keys=False))
    done = promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
