"""Control records on the lane topics: operator requests that the scoring stage carries out
in order with the events of the same partition (pure; no I/O).

A lane record is normally a JSON array of routed events (events/routed.py). A control record
is a JSON object instead, so one decoder tells them apart by the first token. The only
control today is `rescore`: score the named entities again from their stored state and
publish a new version where the score differs (`trustscore-stream rescore`). It travels on
the entity's partition, so the worker that owns the state handles it, through the same
fold → publish → checkpoint path as events: versions stay consecutive, and a repeated
control record (read again after a crash) finds nothing new to publish.
"""

from __future__ import annotations

import msgspec

from trustscore_stream.events.routed import Routed

# A rescore's history rows and deltas name this cause instead of an event id.
RESCORE_CAUSE_PREFIX = "rescore:"


class RescoreRequest(msgspec.Struct, tag="rescore", tag_field="control", gc=False):
    """Score `entities` again (they live on the record's partition)."""

    entities: list[str]
    request_id: str
    requested_at: float  # unix seconds

    @property
    def cause(self) -> str:
        return f"{RESCORE_CAUSE_PREFIX}{self.request_id}"


LaneContent = list[Routed] | RescoreRequest

_encoder = msgspec.json.Encoder()
_lane_decoder: msgspec.json.Decoder[LaneContent] = msgspec.json.Decoder(
    list[Routed] | RescoreRequest  # type: ignore[arg-type]
)


def encode_control(request: RescoreRequest) -> bytes:
    return _encoder.encode(request)


def decode_lane_record(raw: bytes) -> LaneContent:
    """A lane record: routed events (an array) or a control request (an object)."""
    return _lane_decoder.decode(raw)
