from __future__ import annotations

import math

from trustscore_stream.ingest_auth import RateLimiter, TokenBucket, authenticate, sign

KEYS = {"acme": "s3cret", "beta": "other"}
BODY = b'[{"event_id": "x"}]'


def test_bearer_secret() -> None:
    assert authenticate(KEYS, {"Authorization": "Bearer s3cret"}, BODY) == "acme"
    assert authenticate(KEYS, {"Authorization": "Bearer nope"}, BODY) is None
    assert authenticate(KEYS, {}, BODY) is None


def test_hmac_signature_of_the_raw_body() -> None:
    headers = {"X-TrustScore-Key": "beta", "X-TrustScore-Signature": sign("other", BODY)}
    assert authenticate(KEYS, headers, BODY) == "beta"
    assert authenticate(KEYS, headers, BODY + b" ") is None  # body changed
    wrong_key = {**headers, "X-TrustScore-Key": "acme"}
    assert authenticate(KEYS, wrong_key, BODY) is None
    assert sign("other", BODY).startswith("sha256=") and len(sign("other", BODY)) == 71


def test_token_bucket_allows_a_burst_of_twice_the_rate_then_refills() -> None:
    bucket = TokenBucket(rate=1000, burst=2000)
    assert bucket.take(2000, now=10.0) == 0.0
    assert bucket.take(500, now=10.0) == 0.5  # wait half a second
    assert bucket.take(500, now=10.5) == 0.0
    assert bucket.take(3000, now=11.0) == math.inf  # can never fit


def test_limiter_is_per_key() -> None:
    limiter = RateLimiter(rate=10)
    assert limiter.take("a", 20, 0.0) == 0.0
    assert limiter.take("a", 1, 0.0) > 0
    assert limiter.take("b", 20, 0.0) == 0.0


def test_a_signed_timestamp_is_accepted_while_fresh_and_refused_when_replayed_later() -> None:
    signed = {
        "X-TrustScore-Key": "beta",
        "X-TrustScore-Timestamp": "1700000000",
        "X-TrustScore-Signature": sign("other", BODY, 1700000000),
    }
    assert authenticate(KEYS, signed, BODY, now=1700000000 + 299) == "beta"
    assert authenticate(KEYS, signed, BODY, now=1700000000 + 301) is None  # stale replay
    assert authenticate(KEYS, signed, BODY, now=1700000000 - 301) is None  # from the future
    assert authenticate(KEYS, signed, BODY) is None  # no clock: cannot accept a timestamp
    moved = {**signed, "X-TrustScore-Timestamp": "1700000100"}  # not what was signed
    assert authenticate(KEYS, moved, BODY, now=1700000100) is None
    garbled = {**signed, "X-TrustScore-Timestamp": "soon"}
    assert authenticate(KEYS, garbled, BODY, now=1700000000) is None


def test_timestamps_can_be_required_for_signed_requests() -> None:
    body_only = {"X-TrustScore-Key": "beta", "X-TrustScore-Signature": sign("other", BODY)}
    assert authenticate(KEYS, body_only, BODY, now=1.0) == "beta"
    assert authenticate(KEYS, body_only, BODY, now=1.0, require_timestamp=True) is None
    bearer = {"Authorization": "Bearer s3cret"}
    assert authenticate(KEYS, bearer, BODY, now=1.0, require_timestamp=True) == "acme"


def test_a_signature_made_with_another_secret_is_refused() -> None:
    forged = {"X-TrustScore-Key": "beta", "X-TrustScore-Signature": sign("s3cret", BODY)}
    assert authenticate(KEYS, forged, BODY) is None
    assert authenticate(KEYS, {**forged, "X-TrustScore-Signature": "sha256=zz"}, BODY) is None
