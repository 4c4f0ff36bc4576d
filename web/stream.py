"""`GET /api/v1/stream` (Server-Sent Events, CONTRACT §4) and `GET /api/v1/changes` (the
same events for clients that cannot hold a stream).

Every worker serves every channel from its own hub (trustscore_stream/live): nothing is
proxied. Channels: `entity=<id>` (repeatable; a collection also carries its NFTs'
changes), `all=1` (every score change; an extension for dashboards) and `user=me` (the
signed-in user's notifications; `Authorization: Bearer <jwt>` or `access_token=`).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, cast

import faust
import orjson
from aiohttp import web
from faust.web import Request, Response, View

from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.live.channels import FIREHOSE, user_channel
from trustscore_stream.live.frames import PING, retry
from trustscore_stream.live.hub import LimitExceeded
from trustscore_stream.web.auth import Unauthorized, bearer_token, user_id

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime

MAX_ENTITIES = 100  # per stream: a bigger watch list is a subscription (CONTRACT §5)
MAX_CHANGES = 5000
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "X-Accel-Buffering": "no",  # nginx and friends: don't buffer the stream
    "Connection": "keep-alive",
}


class BadRequest(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Any:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def requested_channels(
    request: web.Request, jwt_secret: str | None
) -> tuple[frozenset[str], str | None]:
    """The channels a request asks for and the verified user (None: anonymous)."""
    channels: set[str] = set()
    entities = request.query.getall("entity", [])
    if len(entities) > MAX_ENTITIES:
        raise BadRequest(400, "too_many_entities", f"at most {MAX_ENTITIES} entity= per stream")
    for raw in entities:
        try:
            channels.add(str(parse_entity_id(raw)))
        except InvalidEntityId as exc:
            raise BadRequest(400, "invalid_entity_id", str(exc)) from None
    if request.query.get("all", "").lower() in ("1", "true", "yes"):
        channels.add(FIREHOSE)
    wants_user = "user" in request.query
    if wants_user and request.query["user"] != "me":
        raise BadRequest(400, "invalid_user", "user= takes only 'me' (your own notifications)")
    user: str | None = None
    try:
        token = bearer_token(request, allow_query=True)
        if token is not None or wants_user:
            if token is None:
                raise Unauthorized("user=me needs Authorization: Bearer <jwt>")
            user = user_id(token, jwt_secret)
    except Unauthorized as exc:
        raise BadRequest(401, "unauthorized", str(exc)) from None
    if wants_user and user is not None:
        channels.add(user_channel(user))
    if not channels:
        raise BadRequest(400, "no_channel", "ask for entity=<id>, all=1 or user=me")
    return frozenset(channels), user


def register_stream(app: faust.App, runtime: Runtime) -> None:
    settings, hub, metrics = runtime.settings, runtime.hub, runtime.metrics
    metrics.sse_clients.set_function(lambda: len(hub.clients))
    metrics.sse_buffered.set_function(lambda: len(hub.buffer))

    async def end_streams(_: web.Application) -> None:
        # aiohttp waits for open handlers at shutdown: without this a connected client
        # would hold a stopping worker for the full handler timeout.
        hub.close_all("shutdown")

    cast(Any, app.web).web_app.on_shutdown.append(end_streams)

    async def ping_idle_streams() -> None:
        # Two ticks without a frame make a ping: no stream stays silent a full interval.
        hub.ping_idle()

    app.timer(settings.sse_ping_s / 3, name="sse-ping")(ping_idle_streams)

    cancel_handlers_on_disconnect(app)

    @app.page("/api/v1/stream")
    class Stream(View):
        async def get(self, request: Request) -> Response:
            aio = cast(web.Request, request)
            try:
                channels, user = requested_channels(aio, settings.jwt_secret)
                opened = hub.open(channels, user, aio.headers.get("Last-Event-ID"))
            except BadRequest as exc:
                metrics.sse_rejected.labels(exc.error).inc()
                return cast(Response, _error(exc.status, exc.error, exc.detail))
            except LimitExceeded as exc:
                metrics.sse_rejected.labels("too_many_streams").inc()
                return cast(
                    Response, _error(429, "too_many_streams", str(exc), {"Retry-After": "5"})
                )
            client = opened.client
            transport = aio.transport
            if transport is not None:
                # A client cut off by the hub may be blocked in a write: end the connection.
                client.abort = transport.abort
                sock = transport.get_extra_info("socket")
                if settings.sse_send_buffer and sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.sse_send_buffer)
            response = web.StreamResponse(headers=SSE_HEADERS)
            try:
                await response.prepare(aio)
                metrics.sse_connections.inc()
                first = retry(settings.sse_retry_ms)  # sent once, with the first frame
                frames = opened.replay
                metrics.sse_replayed.inc(len(frames))
                while client.closed is None:
                    if not frames:
                        await client.wait()
                        frames = client.take()
                    if frames:
                        await response.write(first + b"".join(frames))
                        first, frames = b"", []
                    elif client.ping_due and client.closed is None:
                        client.ping_due, client.active = False, True  # next ping: 2 ticks on
                        await response.write(PING)
            except ConnectionError:
                pass  # the client went away (or the hub cut it off): clean up below
            finally:
                if client.closed is None:  # not ended by the hub (slow, shutdown): the client
                    metrics.sse_disconnects.labels("client").inc()
                hub.close(client)
            return cast(Response, response)

    @app.page("/api/v1/changes")
    class Changes(View):
        async def get(self, request: Request) -> Response:
            aio = cast(web.Request, request)
            try:
                channels, _ = requested_channels(aio, settings.jwt_secret)
                limit = int(aio.query.get("limit", "1000"))
                if not 1 <= limit <= MAX_CHANGES:
                    raise ValueError
            except BadRequest as exc:
                return cast(Response, _error(exc.status, exc.error, exc.detail))
            except ValueError:
                return cast(Response, _error(400, "invalid_limit", f"limit is 1..{MAX_CHANGES}"))
            found = hub.changes(channels, aio.query.get("since"), limit)
            body = {
                "events": [
                    {"id": eid, "event": event, "data": orjson.Fragment(data)}
                    for eid, event, data in found.events
                ],
                "last_id": found.last_id,
                "more": found.more,
                "reset": found.reset is not None,
            }
            if found.reset is not None:
                body["reason"] = found.reset
            return cast(
                Response,
                web.Response(body=orjson.dumps(body), content_type="application/json"),
            )


def cancel_handlers_on_disconnect(app: faust.App) -> None:
    """A stream whose client hung up is cleaned up at once, not at its next ping: aiohttp
    cancels the handler of a lost connection only with `handler_cancellation`, and Faust
    builds the runner without options, so the option goes into the runner's arguments
    before the server starts (tests/test_sse.py checks the effect)."""
    runner = cast(Any, app.web)._runner
    runner._kwargs["handler_cancellation"] = True
