"""`GET /metrics` in the Prometheus text format (CONTRACT §7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime


def register_metrics(app: faust.App, runtime: Runtime) -> None:
    registry = runtime.metrics.registry

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type=, so set the header itself.
            body = generate_latest(registry)
            return cast(
                Response, web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
            )
