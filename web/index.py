"""`GET /`: a landing page listing the endpoints (the live dashboard replaces it later)."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime


def register_index(app: faust.App, runtime: Runtime) -> None:
    page = files("trustscore_stream.web").joinpath("static/index.html").read_bytes()

    @app.page("/")
    class Index(View):
        async def get(self, request: Request) -> Response:
            answer = web.Response(body=page, content_type="text/html", charset="utf-8")
            return cast(Response, answer)
