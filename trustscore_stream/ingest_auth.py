"""Credentials and rate limits of HTTP producers (CONTRACT §8), pure and clock-injected.

A producer authenticates with `Authorization: Bearer <secret>`, or with
`X-TrustScore-Key: <key_id>` plus `X-TrustScore-Signature: sha256=<hex HMAC-SHA256 of the
raw body>`. Each key gets a token bucket of `rate` events per second with a burst of twice
that; a request costs one token per envelope.

Replay protection (an addition to CONTRACT §8): a signed request may carry
`X-TrustScore-Timestamp: <unix seconds>`; the signature then covers `"<timestamp>." + body`
and the request is refused when the timestamp is more than `tolerance_s` away from now.
With `require_timestamp` a signed request without it is refused too. Without a timestamp a
replayed body is still harmless to scores: its `event_id`s are deduplicated.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

SIGNATURE_PREFIX = "sha256="
TIMESTAMP_HEADER = "X-TrustScore-Timestamp"
DEFAULT_TOLERANCE_S = 300.0


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    message = body if timestamp is None else f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def authenticate(
    keys: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    require_timestamp: bool = False,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> str | None:
    """The key id the request proves it holds, or None. `now` (unix seconds) is needed to
    accept a timestamped signature."""
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        presented = authorization.removeprefix("Bearer ").strip()
        for key_id, secret in keys.items():
            if hmac.compare_digest(presented.encode(), secret.encode()):
                return key_id
        return None
    claimed = headers.get("X-TrustScore-Key")
    signature = headers.get("X-TrustScore-Signature", "")
    if claimed is None or claimed not in keys:
        return None
    stamp = headers.get(TIMESTAMP_HEADER)
    if stamp is None:
        if require_timestamp:
            return None
        expected = sign(keys[claimed], body)
    else:
        try:
            timestamp = int(stamp)
        except ValueError:
            return None
        if now is None or abs(now - timestamp) > tolerance_s:
            return None  # stale (or from the future): a replay
        expected = sign(keys[claimed], body, timestamp)
    if hmac.compare_digest(signature.encode(), expected.encode()):
        return claimed
    return None


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, cost: float, now: float) -> float:
        """Take `cost` tokens; 0.0 if granted, else the seconds to wait before retrying."""
        if self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        if cost > self.burst or self.rate <= 0:
            return math.inf
        return (cost - self.tokens) / self.rate


@dataclass
class RateLimiter:
    rate: float
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, key_id: str, cost: float, now: float) -> float:
        bucket = self.buckets.get(key_id)
        if bucket is None:
            bucket = self.buckets[key_id] = TokenBucket(self.rate, 2 * self.rate)
        return bucket.take(cost, now)
