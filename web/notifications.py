"""Users' subscriptions and notifications (CONTRACT §5), behind a JWT.

- `POST /api/v1/subscriptions`, `GET /api/v1/subscriptions`, `DELETE /api/v1/subscriptions/{id}`
- `GET /api/v1/notifications?unread=true`, `POST /api/v1/notifications/{id}/read`
- `GET /api/v1/notifications/{id}/deliveries` (extension: every delivery and its attempts)

Every query is scoped by the token's user: another user's id answers 404, like an unknown
one. A subscription change is written to the database, then sent to
`trustscore-subscriptions` (the notifier's table) and `trustscore-watch` (so the entity is
scored eagerly while someone watches it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.errors import HeaderParseError
from email.headerregistry import Address
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import faust
import orjson
from aiohttp import web
from faust.web import Request, Response, View
from sqlalchemy import Engine

from trustscore_stream.agents.notify import subscription_change
from trustscore_stream.agents.watch import watch_record
from trustscore_stream.db import notifications as repo
from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.notifications.records import CHANNELS, SubscriptionRecord
from trustscore_stream.web.auth import Unauthorized, bearer_token, user_id

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime

MAX_LIST = 500


class Invalid(Exception):
    pass


def _json(body: Any, status: int = 200) -> Response:
    return cast(
        Response,
        web.Response(body=orjson.dumps(body), status=status, content_type="application/json"),
    )


def _error(status: int, error: str, detail: str) -> Response:
    return _json({"error": error, "detail": detail}, status)


def valid_address(email: object) -> bool:
    """An e-mail address that can go into a To: header as it is."""
    if not isinstance(email, str) or not 3 <= len(email) <= 320 or not email.isprintable():
        return False
    try:
        address = Address(addr_spec=email)
    except (ValueError, IndexError, HeaderParseError):
        return False
    return bool(address.username and address.domain) and address.addr_spec == email


def subscription_spec(body: Any) -> repo.SubscriptionSpec:
    """Validate a POST body (CONTRACT §5); raises Invalid with the reason."""
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object")
    unknown = set(body) - {
        "entity",
        "min_score",
        "change_pct",
        "channels",
        "webhook_url",
        "email",
        "locale",
    }
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(sorted(unknown))}")
    try:
        entity = str(parse_entity_id(body.get("entity", "")))
    except (InvalidEntityId, TypeError, AttributeError) as exc:
        raise Invalid(f"entity: {exc}") from None
    min_score = body.get("min_score")
    if min_score is not None and (
        isinstance(min_score, bool)
        or not isinstance(min_score, int | float)
        or not 0 <= min_score <= 100
    ):
        raise Invalid("min_score is a number from 0 to 100")
    change_pct = body.get("change_pct")
    if change_pct is not None and (
        isinstance(change_pct, bool)
        or not isinstance(change_pct, int | float)
        or not 0 < change_pct <= 1000
    ):
        raise Invalid("change_pct is a number above 0 (percent)")
    channels = body.get("channels", ["in_app"])
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) and c in CHANNELS for c in channels)
        or len(set(channels)) != len(channels)
    ):
        raise Invalid(f"channels is a non-empty list of distinct {', '.join(CHANNELS)}")
    webhook_url = body.get("webhook_url")
    if "webhook" in channels:
        try:
            parts = urlsplit(webhook_url) if isinstance(webhook_url, str) else None
            ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok or len(str(webhook_url)) > 2048 or not str(webhook_url).isprintable():
            raise Invalid("the webhook channel needs webhook_url (http or https)")
    elif webhook_url is not None:
        raise Invalid("webhook_url is only for the webhook channel")
    email = body.get("email")
    if "email" in channels and not valid_address(email):
        raise Invalid("the email channel needs an email address")
    locale = body.get("locale")
    if locale is not None and not (isinstance(locale, str) and 2 <= len(locale) <= 16):
        raise Invalid("locale is a language tag such as en or de")
    return repo.SubscriptionSpec(
        entity=entity,
        channels=tuple(channels),
        min_score=None if min_score is None else float(min_score),
        change_pct=None if change_pct is None else float(change_pct),
        webhook_url=webhook_url if "webhook" in channels else None,
        email=email if "email" in channels else None,
        locale=locale,
    )


def register_notifications(app: faust.App, runtime: Runtime) -> None:
    settings, engine, topics = runtime.settings, runtime.engine, runtime.topics

    def authenticated(request: Request) -> str | Response:
        try:
            token = bearer_token(cast(web.Request, request))
            if token is None:
                raise Unauthorized("Authorization: Bearer <jwt> is required")
            return user_id(token, settings.jwt_secret)
        except Unauthorized as exc:
            return _error(401, "unauthorized", str(exc))

    async def announce(op: str, document: dict[str, Any], user: str) -> None:
        sub = SubscriptionRecord(
            id=document["id"],
            user_id=user,
            entity=document["entity"],
            channels=tuple(document["channels"]),
            min_score=document["min_score"],
            change_pct=document["change_pct"],
            locale=document["locale"],
            webhook_url=document["webhook_url"],
            email=document["email"],
        )
        partition, value = subscription_change(op, sub, settings.partitions)
        await topics.subscriptions.send(key=sub.entity.encode(), value=value, partition=partition)
        partition, value = watch_record(sub.entity, 1 if op == "put" else -1, settings.partitions)
        await topics.watch.send(value=value, partition=partition)

    @app.page("/api/v1/subscriptions")
    class Subscriptions(View):
        async def post(self, request: Request) -> Response:
            user = authenticated(request)
            if not isinstance(user, str):
                return user
            try:
                spec = subscription_spec(orjson.loads(await request.read()))
            except orjson.JSONDecodeError:
                return _error(400, "invalid_json", "the body is not JSON")
            except Invalid as exc:
                return _error(400, "invalid_subscription", str(exc))
            document = await asyncio.to_thread(repo.create_subscription, engine, user, spec)
            await announce("put", document, user)
            return _json(document, 201)

        async def get(self, request: Request) -> Response:
            user = authenticated(request)
            if not isinstance(user, str):
                return user
            return _json(await asyncio.to_thread(repo.list_subscriptions, engine, user))

    async def owned(
        request: Request, lookup: Callable[[Engine, str, str], Any], item: str, what: str
    ) -> tuple[str, Any] | Response:
        """(user, result) of `lookup(engine, user, item)`; 401 without a user, 404 when the
        user has no such item (another user's id included)."""
        user = authenticated(request)
        if not isinstance(user, str):
            return user
        found = await asyncio.to_thread(lookup, engine, user, item)
        if found is None:
            return _error(404, "not_found", f"no such {what}")
        return user, found

    @app.page("/api/v1/subscriptions/{sub_id}")
    class OneSubscription(View):
        async def get(self, request: Request, sub_id: str) -> Response:
            found = await owned(request, repo.get_subscription, sub_id, "subscription")
            return found if not isinstance(found, tuple) else _json(found[1])

        async def delete(self, request: Request, sub_id: str) -> Response:
            found = await owned(request, repo.delete_subscription, sub_id, "subscription")
            if not isinstance(found, tuple):
                return found
            user, deleted = found
            await announce("delete", deleted, user)
            return cast(Response, web.Response(status=204))

    @app.page("/api/v1/notifications")
    class Notifications(View):
        async def get(self, request: Request) -> Response:
            user = authenticated(request)
            if not isinstance(user, str):
                return user
            unread = request.query.get("unread", "").lower() in ("1", "true", "yes")
            try:
                limit = int(request.query.get("limit", "100"))
                if not 1 <= limit <= MAX_LIST:
                    raise ValueError
            except ValueError:
                return _error(400, "invalid_limit", f"limit is 1..{MAX_LIST}")
            found = await asyncio.to_thread(repo.list_notifications, engine, user, unread, limit)
            return _json(found)

    @app.page("/api/v1/notifications/{notification_id}/read")
    class Read(View):
        async def post(self, request: Request, notification_id: str) -> Response:
            found = await owned(request, repo.mark_read, notification_id, "notification")
            return found if not isinstance(found, tuple) else _json(found[1])

    @app.page("/api/v1/notifications/{notification_id}/deliveries")
    class Deliveries(View):
        async def get(self, request: Request, notification_id: str) -> Response:
            found = await owned(request, repo.delivery_report, notification_id, "notification")
            return found if not isinstance(found, tuple) else _json(found[1])
