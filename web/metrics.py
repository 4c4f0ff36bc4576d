"""`GET /metrics` in the Prometheus text format (CONTRACT §7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime


def register_metrics(app: faust.App, runtime: Runtime) -> None:
    registry = runtime.metrics.registry

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
