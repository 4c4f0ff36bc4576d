"""Users of the API: `Authorization: Bearer <jwt>` (CONTRACT §5), HS256 with
`TRUSTSCORE_JWT_SECRET`, claim `sub` = user id. Browsers' EventSource cannot send headers,
so the stream also takes the token as `access_token=` (an extension; the header wins)."""

from __future__ import annotations

import time

import jwt
from aiohttp import web

ALGORITHMS = ["HS256"]


class Unauthorized(Exception):
    """No credential, or one that does not verify."""


def bearer_token(request: web.Request, allow_query: bool = False) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <jwt>'")
        return token.strip()
    if allow_query:
        return request.query.get("access_token") or None
    return None


def user_id(token: str, secret: str | None) -> str:
    """The verified `sub` of `token`."""
    if not secret:
        raise Unauthorized("user authentication is not configured (TRUSTSCORE_JWT_SECRET)")
    try:
        claims = jwt.decode(
            token, secret, algorithms=ALGORITHMS, options={"require": ["sub", "exp"]}
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("invalid token: claim 'sub' must be a non-empty string")
    return sub


def issue_token(user: str, secret: str, lifetime_s: int = 86400) -> str:
    """A token for `user` (the demo prints one; tests sign their own)."""
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + lifetime_s}, secret, "HS256")
