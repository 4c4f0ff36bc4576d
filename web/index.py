"""`GET /`: the live dashboard (web/static/, plain files: no build step at run time), its
assets under `/static/`."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime


def register_index(app: faust.App, runtime: Runtime) -> None:
    static = files("trustscore_stream.web").joinpath("static")
    page = static.joinpath("index.html").read_bytes()
    app.web.add_static("/static/", Path(str(static)))

    @app.page("/")
    class Index(View):
        async def get(self, request: Request) -> Response:
            answer = web.Response(body=page, content_type="text/html", charset="utf-8")
            return cast(Response, answer)
