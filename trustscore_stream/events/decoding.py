"""Turning one Kafka record (or HTTP body) into valid envelopes and itemised rejections.

A record is one JSON envelope or a batch record (a JSON array of up to 1,000 envelopes,
CONTRACT §2). Every envelope of a batch is validated on its own; a bad one is rejected with
its `index`, the good ones go on. Nothing here raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec
import orjson

from trustscore_stream.events.envelope import (
    MAX_BATCH_ENVELOPES,
    MAX_ENVELOPE_BYTES,
    Envelope,
    decode_envelope,
    decode_envelopes,
)

_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])

# Machine-readable reasons (the `reason` of a DLQ record). Stable: clients match on them.
INVALID_JSON = "invalid_json"
INVALID_ENCODING = "invalid_encoding"
NOT_AN_OBJECT = "not_an_object"
TOO_LARGE = "too_large"
BATCH_TOO_LARGE = "batch_too_large"
EMPTY_BATCH = "empty_batch"
UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
INVALID_VALUE = "invalid_value"
UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
# JSON nested deeper than MAX_DEPTH. msgspec recurses per level up to the interpreter's
# recursion limit, which is not ours to rely on: importing web3 (py_ecc) raises it to
# 100,000, where a hostile record could exhaust the C stack instead of raising.
TOO_DEEP = "too_deep"
# orjson's fixed nesting limit: a record with more openers than this is parsed by orjson
# first, which refuses anything deeper (rare: a 100-envelope batch has ~300 openers).
MAX_DEPTH = 1024
_DEPTH_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')

REASONS: tuple[str, ...] = (
    INVALID_JSON,
    INVALID_ENCODING,
    NOT_AN_OBJECT,
    TOO_LARGE,
    BATCH_TOO_LARGE,
    EMPTY_BATCH,
    UNKNOWN_TYPE,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_VALUE,
    UNSUPPORTED_SCHEMA_VERSION,
    TOO_DEEP,
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One piece of input that cannot be processed, and why."""

    reason: str
    detail: str
    raw: bytes
    index: int | None = None  # position inside a batch record


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    envelopes: list[Envelope]
    rejections: list[Rejection]
    is_batch: bool


def classify_validation_error(message: str) -> str:
    """Map a msgspec error message to one of our stable reason codes."""
    if message.startswith("Object missing required field"):
        return MISSING_FIELD
    if "`$.type`" in message:
        return UNKNOWN_TYPE
    if "`$.schema_version`" in message:
        return UNSUPPORTED_SCHEMA_VERSION
    if message.startswith("Expected `object`"):
        return NOT_AN_OBJECT
    if message.startswith("Expected `") and ", got `" in message:
        return WRONG_TYPE
    return INVALID_VALUE


def _too_deep(raw: bytes, index: int | None = None) -> Rejection:
    return Rejection(TOO_DEEP, f"JSON nested deeper than {MAX_DEPTH} levels", raw, index)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_one(raw: bytes, index: int | None = None) -> Envelope | Rejection:
    """Decode a single envelope, returning a Rejection instead of raising."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        return Rejection(
            TOO_LARGE,
            f"envelope is {len(raw)} bytes; the limit is {MAX_ENVELOPE_BYTES}",
            raw,
            index,
        )
    try:
        return decode_envelope(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        return Rejection(classify_validation_error(message), message, raw, index)
    except msgspec.DecodeError as exc:
        reason = INVALID_JSON if _is_utf8(raw) else INVALID_ENCODING
        return Rejection(reason, str(exc), raw, index)
    except RecursionError:
        return _too_deep(raw, index)
    except UnicodeDecodeError as exc:  # msgspec's error for invalid UTF-8 inside a string
        return Rejection(INVALID_ENCODING, str(exc), raw, index)


def _deeper_than_allowed(raw: bytes) -> bool:
    """Whether `raw` nests deeper than MAX_DEPTH (strings skipped), whatever the
    interpreter's recursion limit. Free for ordinary records: depth is at most the number
    of openers, counted at C speed."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            return True
    else:
        return False
    # Not JSON orjson reads (bad encoding, a syntax error): count depth outside strings.
    depth = 0
    for token in _DEPTH_TOKENS.finditer(raw):
        opener = token.group()
        if opener in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif opener in (b"]", b"}"):
            depth -= 1
    return False


def decode_record(raw: bytes) -> DecodedRecord:
    """Decode a record that holds one envelope or a batch record of envelopes."""
    if _deeper_than_allowed(raw):
        # A batch this deep cannot be split safely either: the record goes as a whole.
        return DecodedRecord([], [_too_deep(raw)], raw.lstrip()[:1] == b"[")
    head = raw.lstrip()[:1]
    if head != b"[":
        if head != b"{" and len(raw) <= MAX_ENVELOPE_BYTES:
            reason = INVALID_ENCODING if not _is_utf8(raw) else INVALID_JSON
            if reason == INVALID_JSON and _looks_like_json_scalar(raw):
                reason = NOT_AN_OBJECT
            return DecodedRecord([], [Rejection(reason, _scalar_detail(reason), raw)], False)
        result = decode_one(raw)
        if isinstance(result, Rejection):
            return DecodedRecord([], [result], False)
        return DecodedRecord([result], [], False)
    return _decode_batch(raw)


def _split(raw: bytes) -> list[msgspec.Raw] | Rejection:
    try:
        return _batch_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        reason = INVALID_JSON if _is_utf8(raw) else INVALID_ENCODING
        return Rejection(reason, f"batch record: {exc}", raw)
    except RecursionError:
        return _too_deep(raw)
    except UnicodeDecodeError as exc:
        return Rejection(INVALID_ENCODING, f"batch record: {exc}", raw)


def _decode_batch(raw: bytes) -> DecodedRecord:
    # Only a record over the envelope limit can hold an over-sized envelope: look first.
    items = _split(raw) if len(raw) > MAX_ENVELOPE_BYTES else None
    if isinstance(items, Rejection):
        return DecodedRecord([], [items], True)
    if items is None or max((len(i) for i in items), default=0) <= MAX_ENVELOPE_BYTES:
        # Fast path: a batch whose items are all valid decodes in one pass. Any error sends
        # it down the per-item path, which finds and reports every bad item by index.
        try:
            decoded = decode_envelopes(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
            pass
        else:
            if 0 < len(decoded) <= MAX_BATCH_ENVELOPES:
                return DecodedRecord(decoded, [], True)
    if items is None:
        items = _split(raw)
        if isinstance(items, Rejection):
            return DecodedRecord([], [items], True)
    if not items:
        empty = Rejection(EMPTY_BATCH, "batch record holds no envelope", raw)
        return DecodedRecord([], [empty], True)
    if len(items) > MAX_BATCH_ENVELOPES:
        detail = f"batch record holds {len(items)} envelopes; the limit is {MAX_BATCH_ENVELOPES}"
        return DecodedRecord([], [Rejection(BATCH_TOO_LARGE, detail, raw)], True)
    envelopes: list[Envelope] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        result = decode_one(bytes(item), index)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            envelopes.append(result)
    return DecodedRecord(envelopes, rejections, True)


def _looks_like_json_scalar(raw: bytes) -> bool:
    try:
        msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return False
    return True


def _scalar_detail(reason: str) -> str:
    if reason == NOT_AN_OBJECT:
        return "record is JSON but neither an envelope object nor a batch array"
    if reason == INVALID_ENCODING:
        return "record is not UTF-8 text"
    return "record is not valid JSON"
