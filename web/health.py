"""`GET /health` (the process is alive) and `GET /ready` (it can serve: assigned
partitions, tables recovered, not rebalancing) — CONTRACT §7."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import faust
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime


def readiness(app: faust.App, database_ready: bool) -> tuple[bool, dict[str, Any]]:
    consumer_started = app.consumer is not None and app.consumer.started
    assignment = app.consumer.assignment() if consumer_started else set()
    recovered = bool(cast(Any, app.tables).recovery.completed.is_set())
    rebalancing = bool(app.rebalancing)
    ready = (
        consumer_started and bool(assignment) and recovered and not rebalancing and database_ready
    )
    return ready, {
        "status": "ready" if ready else "starting",
        "assigned_partitions": len(assignment),
        "tables_recovered": recovered,
        "rebalancing": rebalancing,
        "database": "ready" if database_ready else "waiting",
    }


def register_health(app: faust.App, runtime: Runtime) -> None:
    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ready, body = readiness(app, runtime.history.db_ready.is_set())
            return self.json(body, status=200 if ready else 503)
