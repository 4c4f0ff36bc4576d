"""`GET /api/v1/scores/{entity_id}` and `.../history` (CONTRACT §3), from any worker.

An entity's state lives on its partition key's partition (an NFT's on its collection's).
A request for a key another worker owns is forwarded to that worker as is, and its answer
returned unchanged; while ownership is moving (a rebalance) the answer is 503 with
Retry-After, never a stale value. Scores are computed on read from the stored factor
state, so a read is always current, also for NFTs whose collection changed since their
last event.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import faust
from aiohttp import web
from faust.web import Request, Response, View
from yarl import URL

from trustscore_stream.agents.scoring import score_state
from trustscore_stream.db.history import score_history
from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.scoring.publication import score_document
from trustscore_stream.tables.entity_state import TABLE_NAME

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime

FORWARDED_HEADER = "X-TrustScore-Forwarded"
MAX_HISTORY = 1000
RETRY_AFTER_S = "2"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return cast(Response, web.json_response(body, status=status, headers=headers))


def _unavailable(detail: str) -> Response:
    return _json({"error": "unavailable", "detail": detail}, 503, {"Retry-After": RETRY_AFTER_S})


def register_scores(app: faust.App, runtime: Runtime) -> None:
    def owner(entity: str) -> URL | None:
        """The web URL of the worker owning `entity`'s partition, None if unknown now."""
        parsed = parse_entity_id(entity)
        key = parsed.collection or str(parsed)
        try:
            found: URL = app.router.key_store(TABLE_NAME, key.encode())
            return found
        except (KeyError, LookupError):
            return None

    async def route(request: Request, entity: str) -> Response | None:
        """Forward to the owner if that is another worker; None: answer here."""
        if request.headers.get(FORWARDED_HEADER):
            return None  # forwarded once already: answer from what we hold
        if app.rebalancing:
            return _unavailable("partitions are being reassigned")
        target = owner(entity)
        if target is None:
            return _unavailable("no owner known for this entity yet")
        me = URL(str(app.conf.canonical_url))
        if (target.host, target.port) == (me.host, me.port):
            return None
        url = URL(str(request.url)).with_host(str(target.host)).with_port(target.port)
        try:
            async with (
                aiohttp.ClientSession() as client,
                client.get(
                    url, headers={FORWARDED_HEADER: "1"}, timeout=aiohttp.ClientTimeout(total=5)
                ) as answer,
            ):
                body = await answer.read()
                headers = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
                if "Retry-After" in answer.headers:
                    headers["Retry-After"] = answer.headers["Retry-After"]
                return cast(
                    Response, web.Response(body=body, status=answer.status, headers=headers)
                )
        except (TimeoutError, aiohttp.ClientError):
            return _unavailable(f"owner {target} did not answer")

    def parse(entity_id: str) -> str | Response:
        try:
            return str(parse_entity_id(entity_id))
        except InvalidEntityId as exc:
            return _json({"error": "invalid_entity_id", "detail": str(exc)}, 400)

    @app.page("/api/v1/scores/{entity_id}")
    class Score(View):
        async def get(self, request: Request, entity_id: str) -> Response:
            entity = parse(entity_id)
            if not isinstance(entity, str):
                return entity
            forwarded = await route(request, entity)
            if forwarded is not None:
                return forwarded
            found = score_state(entity, runtime.entities, datetime.now(UTC))
            if found is None:
                return _json({"error": "not_found", "detail": f"no data for {entity}"}, 404)
            stored, result = found
            return _json(score_document(entity, result, stored.published))

    @app.page("/api/v1/scores/{entity_id}/history")
    class History(View):
        async def get(self, request: Request, entity_id: str) -> Response:
            entity = parse(entity_id)
            if not isinstance(entity, str):
                return entity
            try:
                limit = int(request.query.get("limit", "50"))
            except ValueError:
                return _json({"error": "invalid_limit", "detail": "limit is an integer"}, 400)
            if not 1 <= limit <= MAX_HISTORY:
                detail = f"limit is 1..{MAX_HISTORY}"
                return _json({"error": "invalid_limit", "detail": detail}, 400)
            forwarded = await route(request, entity)
            if forwarded is not None:
                return forwarded
            rows = await asyncio.to_thread(score_history, runtime.engine, entity, limit)
            return _json(
                [
                    {
                        "version": r.version,
                        "score": r.score,
                        "factors_changed": list(r.factors_changed),
                        "cause_event_id": r.cause_event_id,
                        "at": r.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    }
                    for r in rows
                ]
            )
