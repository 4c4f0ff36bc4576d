"""Who may call the operations endpoints (web/ops.py); pure.

The endpoints change scores (rescore) and reveal internals (status, verify), so they are
never open on a public interface: with `TRUSTSCORE_OPS_TOKEN` set they take that bearer
token from anyone; without it they answer only clients on the loopback interface, and only
while the web server itself listens on a loopback address (a worker bound to 0.0.0.0 needs a
token). A request that came through a proxy (`X-Forwarded-For`) is not treated as local.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401: credential missing or wrong; 403: not allowed from here
    error: str
    detail: str


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_access(
    *,
    token: str | None,
    web_bind: str,
    peer: str | None,
    authorization: str | None,
    proxied: bool,
) -> Refusal | None:
    """None when the request may proceed, else why not."""
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return None
        return Refusal(401, "unauthorized", "Authorization: Bearer <TRUSTSCORE_OPS_TOKEN> required")
    if not is_loopback(web_bind):
        detail = "set TRUSTSCORE_OPS_TOKEN: the web server listens beyond loopback"
        return Refusal(403, "forbidden", detail)
    if proxied or not is_loopback(peer):
        return Refusal(403, "forbidden", "operations endpoints answer loopback clients only")
    return None
