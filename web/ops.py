"""Operations endpoints of a worker, for `trustscore-stream rescore|verify|status`.

- `POST /ops/v1/rescore/{entity_id}[?dry_run=1&wait=S]`: forwarded to the worker that owns
  the entity's partition (as score reads are, web/scores.py). The owner scores the entity from
  its stored state; if that differs from the stored version it sends a rescore control record
  on the partition's `normal` lane (events/control.py), so the scoring stage publishes the new
  version through its usual path, and waits (up to `wait` seconds) until it is published.
- `GET /ops/v1/verify[?sample=N&entity=ID…&strict=1]`: this worker's partitions only (the CLI
  asks every worker): stored versions against recomputations (ops/verification.py).
- `GET /ops/v1/status`: this worker's assignment, every worker's URL as the group knows them,
  and the key count and bytes of each table's active partitions.

Access (ops/access.py): `TRUSTSCORE_OPS_TOKEN` as a bearer token, or, without a token,
loopback clients of a loopback-bound worker only.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import faust
from aiohttp import web
from faust.types import TP
from faust.web import Request, Response, View
from yarl import URL

from trustscore_stream.agents.scoring import score_state, score_stored
from trustscore_stream.events.control import RescoreRequest, encode_control
from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.ops.access import check_access
from trustscore_stream.ops.verification import check_score
from trustscore_stream.scoring.model import ScoreResult
from trustscore_stream.scoring.publication import Published, is_new_version
from trustscore_stream.scoring.state import NftState
from trustscore_stream.tables.entity_state import TABLE_NAME, partition_key_of
from trustscore_stream.web.scores import FORWARDED_HEADER, RETRY_AFTER_S

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime

DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 300.0
DEFAULT_SAMPLE = 100
MAX_SAMPLE = 100_000
# Table keys counted between yields to the event loop (a status must not stall a worker).
KEYS_PER_YIELD = 2000


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return cast(Response, web.json_response(body, status=status, headers=headers))


def _error(status: int, error: str, detail: str) -> Response:
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    return _json({"error": error, "detail": detail}, status, headers)


def _version(published: Published) -> dict[str, Any]:
    return {
        "version": published.version,
        "score": published.score,
        "level": published.level,
        "at": published.at,
    }


def _parse_time(rfc3339: str | None) -> datetime | None:
    if rfc3339 is None:
        return None
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def register_ops(app: faust.App, runtime: Runtime) -> None:
    settings = runtime.settings

    def refused(request: Request) -> Response | None:
        refusal = check_access(
            token=settings.ops_token,
            web_bind=settings.web_bind,
            peer=cast(web.Request, request).remote,
            authorization=request.headers.get("Authorization"),
            proxied="X-Forwarded-For" in request.headers,
        )
        if refusal is None:
            return None
        return _error(refusal.status, refusal.error, refusal.detail)

    def state_topic() -> str:
        return str(app.tables[TABLE_NAME].changelog_topic.get_topic_name())

    def owned_partitions() -> list[int]:
        topic = state_topic()
        actives: set[TP] = app.assignor.assigned_actives()
        return sorted(tp.partition for tp in actives if tp.topic == topic)

    def owner(entity: str) -> URL | None:
        try:
            found: URL = app.router.key_store(TABLE_NAME, partition_key_of(entity).encode())
            return found
        except (KeyError, LookupError):
            return None

    async def forward(request: Request, entity: str) -> Response | None:
        """Send the request on to the entity's owner; None: this worker is the owner."""
        if request.headers.get(FORWARDED_HEADER):
            return None
        if app.rebalancing:
            return _error(503, "unavailable", "partitions are being reassigned")
        target = owner(entity)
        if target is None:
            return _error(503, "unavailable", "no owner known for this entity yet")
        me = URL(str(app.conf.canonical_url))
        if (target.host, target.port) == (me.host, me.port):
            return None
        url = URL(str(request.url)).with_host(str(target.host)).with_port(target.port)
        headers = {FORWARDED_HEADER: "1"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        timeout = aiohttp.ClientTimeout(total=MAX_WAIT_S + 10)
        try:
            async with (
                aiohttp.ClientSession() as client,
                client.request(request.method, url, headers=headers, timeout=timeout) as answer,
            ):
                body = await answer.read()
                out = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
                if "Retry-After" in answer.headers:
                    out["Retry-After"] = answer.headers["Retry-After"]
                return cast(Response, web.Response(body=body, status=answer.status, headers=out))
        except (TimeoutError, aiohttp.ClientError):
            return _error(503, "unavailable", f"owner {target} did not answer")

    def is_lazy(entity: str, stored_state: object) -> bool:
        """An NFT nobody watches: scored on read, its stored version may lag."""
        if not isinstance(stored_state, NftState) or runtime.scoring.watched is None:
            return False
        parsed = parse_entity_id(entity)
        collection = parsed.collection or entity
        return entity not in runtime.scoring.watched.nfts_of(collection)

    @app.page("/ops/v1/rescore/{entity_id}")
    class Rescore(View):
        async def post(self, request: Request, entity_id: str) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            try:
                entity = str(parse_entity_id(entity_id))
            except InvalidEntityId as exc:
                return _error(400, "invalid_entity_id", str(exc))
            try:
                wait = min(MAX_WAIT_S, float(request.query.get("wait", DEFAULT_WAIT_S)))
            except ValueError:
                return _error(400, "invalid_wait", "wait is a number of seconds")
            dry_run = request.query.get("dry_run", "") in ("1", "true", "yes")
            forwarded = await forward(request, entity)
            if forwarded is not None:
                return forwarded
            found = score_state(entity, runtime.entities, datetime.now(UTC))
            if found is None:
                return _error(404, "not_found", f"no state for {entity} on its owner")
            stored, result = found
            before = stored.published
            answer: dict[str, Any] = {
                "entity": entity,
                "before": _version(before),
                "recomputed": {"score": result.score, "level": result.level},
                "differs": is_new_version(before, result),
            }
            pending = runtime.scoring.is_pending(entity)
            if dry_run:
                return _json({**answer, "status": "dry_run", "pending": pending})
            if not answer["differs"] and not pending:
                return _json({**answer, "status": "unchanged", "after": _version(before)})
            request_id = secrets.token_hex(8)
            control = RescoreRequest([entity], request_id, time.time())
            partition = runtime.entities.partition_of(entity)
            lane = runtime.topics.lanes["normal"]
            key = partition_key_of(entity).encode()
            sent = await lane.send(key=key, value=encode_control(control), partition=partition)
            await sent
            deadline = time.monotonic() + wait
            engine = runtime.scoring
            while not (engine.rescore_folded(request_id) and not engine.is_pending(entity)):
                if time.monotonic() >= deadline:
                    detail = f"rescore {request_id} sent but not published within {wait:g}s"
                    return _json({**answer, "status": "queued", "request_id": request_id,
                                  "detail": detail}, 202)  # fmt: skip
                await asyncio.sleep(0.05)
            after = runtime.entities.get(entity)
            published = after.published if after is not None else before
            status = "published" if published.version > before.version else "unchanged"
            return _json(
                {**answer, "status": status, "request_id": request_id, "after": _version(published)}
            )

    @app.page("/ops/v1/verify")
    class Verify(View):
        async def get(self, request: Request) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            try:
                sample = int(request.query.get("sample", DEFAULT_SAMPLE))
                if not 1 <= sample <= MAX_SAMPLE:
                    raise ValueError
            except ValueError:
                return _error(400, "invalid_sample", f"sample is 1..{MAX_SAMPLE}")
            strict = request.query.get("strict", "") in ("1", "true", "yes")
            if app.rebalancing:
                return _error(503, "unavailable", "partitions are being reassigned")
            partitions = owned_partitions()
            wanted = cast(web.Request, request).query.getall("entity", [])
            if wanted:
                mine = set(partitions)
                chosen = [e for e in wanted if runtime.entities.partition_of(e) in mine]
                total = len(chosen)
            else:
                keys: list[str] = []
                for partition in partitions:
                    keys.extend(runtime.entities.partition(partition).entity_keys())
                    await asyncio.sleep(0)
                total = len(keys)
                chosen = random.sample(keys, min(sample, total))
            checks = []
            now = datetime.now(UTC)
            for entity in chosen:
                state_of = runtime.entities.partition(runtime.entities.partition_of(entity))
                stored = state_of.get(entity)
                if stored is None:
                    continue
                at = _parse_time(stored.published.at)
                at_version: ScoreResult | None = (
                    score_stored(entity, stored, state_of, at) if at is not None else None
                )
                checks.append(
                    check_score(
                        entity,
                        stored.published,
                        at_version,
                        score_stored(entity, stored, state_of, now),
                        pending=runtime.scoring.is_pending(entity),
                        lazy=is_lazy(entity, stored.state),
                        strict=strict,
                    ).to_dict()
                )
            return _json(
                {
                    "worker": str(app.conf.canonical_url),
                    "partitions": partitions,
                    "entities": total,
                    "checks": checks,
                }
            )

    @app.page("/ops/v1/status")
    class Status(View):
        async def get(self, request: Request) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            actives: set[TP] = app.assignor.assigned_actives()
            standbys: set[TP] = app.assignor.assigned_standbys()
            workers: dict[str, dict[str, list[int]]] = {}
            if not app.rebalancing:
                try:
                    metadata = app.router.table_metadata(TABLE_NAME)
                except (KeyError, LookupError):
                    metadata = {}
                for url, topics in metadata.items():
                    workers[str(url)] = {t: sorted(ps) for t, ps in topics.items()}
            tables: dict[str, dict[str, int]] = {}
            for name, table in app.tables.items():
                keys = size = 0
                for key, value in table.data.items():  # active partitions only
                    keys += 1
                    size += len(key) + len(value or b"")
                    if keys % KEYS_PER_YIELD == 0:
                        await asyncio.sleep(0)
                tables[str(name)] = {"keys": keys, "bytes": size}
            return _json(
                {
                    "worker": str(app.conf.canonical_url),
                    "stages": sorted(settings.stages),
                    "rebalancing": bool(app.rebalancing),
                    "active": _by_topic(actives),
                    "standby": _by_topic(standbys),
                    "state_partitions": owned_partitions(),
                    "workers": workers,
                    "tables": tables,
                }
            )


def _by_topic(tps: set[TP]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tp in tps:
        out.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(ps) for topic, ps in sorted(out.items())}
