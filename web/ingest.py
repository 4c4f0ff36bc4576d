"""`POST /api/v1/events` (CONTRACT §2): all-or-nothing validation, one batch record out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View

from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.envelope import MAX_BATCH_ENVELOPES, encode_envelopes

if TYPE_CHECKING:
    from trustscore_stream.app import Runtime

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

    @app.page("/api/v1/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            if int(request.headers.get("Content-Length") or 0) > MAX_REQUEST_BYTES:
                return self.json({"error": "too_large"}, status=413)
            status, answer, record = validate_body(await request.read())
            if record is not None:
                fut = await topic.send(value=record)
                await fut  # answer only once the broker has the record
            return self.json(answer, status=status)
