"""deploy/grafana: the dashboard loads, has the panels operators need, uses the provisioned
data source, and every metric in its expressions is one the app exports."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.deploy.facts import DEPLOY, promql_metric_names, unknown_metrics

GRAFANA = DEPLOY / "grafana"


def dashboard() -> dict[str, Any]:
    loaded = json.loads((GRAFANA / "trustscore.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def test_dashboard_has_the_operator_panels() -> None:
    titles = {panel["title"] for panel in panels()}
    for required in (
        "Ingest rate",
        "Consumer lag",
        "Event → score percentiles",
        "End-to-end percentiles",
        "Dead-letter rate",
        "SSE connections",
        "Notifications by delivery status",
    ):
        assert required in titles
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(set(ids)) == len(ids), "panel ids are unique"
    assert dashboard()["uid"] and dashboard()["title"]


def test_panels_use_the_provisioned_datasource() -> None:
    with (GRAFANA / "provisioning/datasources/prometheus.yml").open() as file:
        (datasource,) = yaml.safe_load(file)["datasources"]
    for panel in panels():
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_every_metric_in_the_panels_exists_in_the_app() -> None:
    used: set[str] = set()
    for panel in panels():
        for target in panel["targets"]:
            names = promql_metric_names(target["expr"])
            assert names, f"{panel['title']}: {target['expr']} selects no metric"
            used |= names
    assert not unknown_metrics(used), (
        f"the dashboard names metrics that trustscore_stream/metrics.py does not define: "
        f"{sorted(unknown_metrics(used))}"
    )


def test_latency_panels_show_percentiles_of_the_slo_histograms() -> None:
    by_title = {panel["title"]: panel for panel in panels()}
    exprs = [t["expr"] for t in by_title["Event → score percentiles"]["targets"]]
    assert {q for q in ("0.5", "0.95", "0.99") if any(f"({q}," in e for e in exprs)} == {
        "0.5",
        "0.95",
        "0.99",
    }
    assert all("trustscore_event_to_scored_seconds_bucket" in e for e in exprs)
    end_to_end = " ".join(t["expr"] for t in by_title["End-to-end percentiles"]["targets"])
    assert "trustscore_event_to_published_seconds_bucket" in end_to_end
