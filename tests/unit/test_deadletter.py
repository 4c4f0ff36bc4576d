"""Dead letters keep the original bytes and always fit in one record."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from trustscore_stream.events.deadletter import MAX_RAW_JSON_BYTES, dead_letter, raw_fields


def letter(raw: bytes) -> dict[str, object]:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    return dead_letter(
        reason="invalid_json", detail="d", raw=raw, topic="t", partition=0, offset=1, at=at
    )


def original(found: dict[str, object]) -> bytes:
    raw = str(found["raw"])
    return base64.b64decode(raw) if found.get("raw_encoding") == "base64" else raw.encode()


@pytest.mark.parametrize(
    "raw",
    [b'{"event_id": 1}', "é🦄".encode(), b"\xff\x00", b"\x01" * 700_000, b'"' * 700_000],
)
def test_raw_is_kept_whole_in_the_smaller_encoding(raw: bytes) -> None:
    found = letter(raw)
    assert original(found) == raw and "raw_truncated" not in found
    assert len(orjson.dumps(found)) < 1024 * 1024
    if raw.isascii() and raw.isalnum():
        assert "raw_encoding" not in found


def test_plain_json_text_stays_text() -> None:
    assert raw_fields(b'{"event_id":"x","payload":{"a":"b"}}') == {
        "raw": '{"event_id":"x","payload":{"a":"b"}}'
    }


def test_a_record_too_big_even_as_base64_is_truncated_and_says_so() -> None:
    """A 1 MiB record of control bytes: 4/3 of it as base64 exceeds the producer's limit."""
    raw = b"\x01" * (1024 * 1024 - 100)
    found = letter(raw)
    assert found["raw_truncated"] is True and found["raw_size"] == len(raw)
    assert raw.startswith(original(found)) and len(str(found["raw"])) <= MAX_RAW_JSON_BYTES
    assert len(orjson.dumps(found)) < 1024 * 1024
