"""Credentials and rate limits of HTTP producers (CONTRACT §8), pure and clock-injected.

A producer authenticates with `Authorization: Bearer <secret>`, or with
`X-TrustScore-Key: <key_id>` plus `X-TrustScore-Signature: sha256=<hex HMAC-SHA256 of the
raw body>`. Each key gets a token bucket of `rate` events per second with a burst of twice
that; a request costs one token per envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

SIGNATURE_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def authenticate(keys: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> str | None:
    """The key id the request proves it holds, or None."""
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
    if hmac.compare_digest(signature.encode(), sign(keys[claimed], body).encode()):
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
