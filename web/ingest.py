"""`POST /api/v1/events` (CONTRACT §2): all-or-nothing validation, one batch record out."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View

from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.envelope import MAX_BATCH_ENVELOPES, encode_envelopes
from trustscore_stream.ingest_auth import RateLimiter, authenticate

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime

log = logging.getLogger(__name__)

# 1,000 envelopes of a few hundred bytes fit easily; beyond this the request is refused
# before it is parsed.
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def validate_body(body: bytes) -> tuple[int, dict[str, Any], bytes | None]:
    """Status, JSON answer and the batch record to publish (None unless accepted)."""
    if len(body) > MAX_REQUEST_BYTES:
        return 413, {"error": "too_large", "detail": f"limit is {MAX_REQUEST_BYTES} bytes"}, None
    decoded = decode_record(body)
    if decoded.rejections:
        errors = [
            {"index": r.index, "reason": r.reason, "detail": r.detail} for r in decoded.rejections
        ]
        if any(r.reason == "batch_too_large" for r in decoded.rejections):
            detail = f"at most {MAX_BATCH_ENVELOPES} envelopes per request"
            return 413, {"error": "too_large", "detail": detail}, None
        return 400, {"error": "invalid_events", "errors": errors, "accepted": 0}, None
    envelopes = decoded.envelopes
    answer = {"accepted": len(envelopes), "event_ids": [e.event_id for e in envelopes]}
    return 202, answer, encode_envelopes(envelopes)


def register_ingest(app: faust.App, runtime: Runtime) -> None:
    topic = runtime.topics.events
    keys = runtime.settings.ingest_keys
    limiter = RateLimiter(runtime.settings.ingest_rate)
    require_timestamp = runtime.settings.ingest_require_timestamp
    if not keys:
        log.warning("TRUSTSCORE_INGEST_KEYS is unset: POST /api/v1/events is open (local use)")

    @app.page("/api/v1/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            if int(request.headers.get("Content-Length") or 0) > MAX_REQUEST_BYTES:
                return self.json({"error": "too_large"}, status=413)
            body = await request.read()
            key_id = "open"
            if keys:
                found = authenticate(
                    keys,
                    request.headers,
                    body,
                    now=time.time(),
                    require_timestamp=require_timestamp,
                )
                if found is None:
                    detail = (
                        "a Bearer secret or an X-TrustScore-Key with its signature"
                        " (and a fresh X-TrustScore-Timestamp when one is signed)"
                    )
                    return self.json({"error": "unauthorized", "detail": detail}, status=401)
                key_id = found
            status, answer, record = validate_body(body)
            if record is not None and keys:
                wait = limiter.take(key_id, answer["accepted"], time.monotonic())
                if wait > 0:
                    retry_after = str(max(1, math.ceil(min(wait, 3600.0))))
                    return self.json(
                        {"error": "rate_limited", "detail": f"retry in {retry_after} s"},
                        status=429,
                        headers={"Retry-After": retry_after},
                    )
            if record is not None:
                fut = await topic.send(value=record)
                await fut  # answer only once the broker has the record
            return self.json(answer, status=status)
