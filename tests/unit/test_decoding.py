from __future__ import annotations

import sys
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stack import CONTRACT, WALLET_A, fraud, sale, social
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.envelope import Sale, decode_envelope, encode_envelope


def test_single_envelope_is_normalised() -> None:
    raw = sale("e1", token=42)
    raw["contract"] = CONTRACT.upper().replace("0X", "0x")
    raw["token_id"] = "0042"
    raw["payload"]["seller"] = WALLET_A.upper().replace("0X", "0x")
    decoded = decode_record(orjson.dumps(raw))
    assert decoded.rejections == [] and not decoded.is_batch
    event = decoded.envelopes[0]
    assert isinstance(event, Sale)
    assert event.contract == CONTRACT and event.token_id == "42"
    assert event.payload.seller == WALLET_A
    assert event.entity == f"nft:eth:{CONTRACT}:42"
    assert event.partition_key == f"collection:eth:{CONTRACT}"


def test_finding_on_nft_is_keyed_by_its_collection() -> None:
    finding = fraud("f1")
    finding["payload"]["entity"] = f"nft:ETH:{CONTRACT}:7"
    event = decode_record(orjson.dumps(finding)).envelopes[0]
    assert event.entity == f"nft:eth:{CONTRACT}:7"
    assert event.partition_key == f"collection:eth:{CONTRACT}"
    wallet = social("s1")
    wallet["payload"]["entity"] = f"wallet:eth:{WALLET_A}"
    assert (
        decode_record(orjson.dumps(wallet)).envelopes[0].partition_key == f"wallet:eth:{WALLET_A}"
    )


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("event_id"), "missing_field"),
        (lambda e: e.__setitem__("type", "teleport"), "unknown_type"),
        (lambda e: e.__setitem__("schema_version", 2), "unsupported_schema_version"),
        (lambda e: e["payload"].__setitem__("price", 1.25), "wrong_type"),
        (lambda e: e["payload"].__setitem__("price", "-1"), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", "1e3"), "invalid_value"),
        (lambda e: e.__setitem__("occurred_at", "2026-11-22T10:15:02"), "invalid_value"),
        (lambda e: e.__setitem__("occurred_at", "yesterday"), "invalid_value"),
        (lambda e: e.__setitem__("event_id", "x" * 201), "invalid_value"),
        (lambda e: e.__setitem__("contract", "0x12"), "invalid_value"),
        (lambda e: e.__setitem__("source", "rumour"), "invalid_value"),
        (lambda e: e.pop("token_id"), "missing_field"),
        (lambda e: e.__setitem__("contract", CONTRACT + "\n"), "invalid_value"),
        (lambda e: e.__setitem__("token_id", "42\n"), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", "1.5\n"), "invalid_value"),
        (lambda e: e.__setitem__("chain", "eth\n"), "invalid_value"),
        (lambda e: e["payload"].pop("buyer"), "missing_field"),
        # Character classes (checked without regular expressions, envelope.py).
        (lambda e: e.__setitem__("contract", "0x" + "g" * 40), "invalid_value"),
        (lambda e: e.__setitem__("contract", "0X" + "a" * 40), "invalid_value"),
        (lambda e: e["payload"].__setitem__("seller", "0x" + "a" * 39 + " "), "invalid_value"),
        (lambda e: e["payload"].__setitem__("buyer", "1x" + "a" * 40), "invalid_value"),
        (lambda e: e.__setitem__("token_id", "4\u0662"), "invalid_value"),  # Arabic-Indic 2
        (lambda e: e.__setitem__("token_id", "-1"), "invalid_value"),
        (lambda e: e.__setitem__("token_id", "1" * 79), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", ".5"), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", "5."), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", "1.2.3"), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", "1" * 31), "invalid_value"),
        (lambda e: e["payload"].__setitem__("price", "\u0661.5"), "invalid_value"),
        (lambda e: e.__setitem__("chain", "-eth"), "invalid_value"),
        (lambda e: e.__setitem__("chain", "eth main"), "invalid_value"),
        (lambda e: e.__setitem__("chain", "e" * 33), "invalid_value"),
    ],
)
def test_bad_envelope_reasons(mutate: Any, reason: str) -> None:
    envelope = sale("e1")
    mutate(envelope)
    decoded = decode_record(orjson.dumps(envelope))
    assert decoded.envelopes == []
    assert [r.reason for r in decoded.rejections] == [reason]
    assert decoded.rejections[0].detail


def test_batch_record_items_are_judged_one_by_one() -> None:
    body = orjson.dumps([sale("a"), {"event_id": 3}, sale("b"), "nope", [1]])
    decoded = decode_record(body)
    assert decoded.is_batch
    assert [e.event_id for e in decoded.envelopes] == ["a", "b"]
    assert [(r.index, r.reason) for r in decoded.rejections] == [
        (1, "missing_field"),
        (3, "not_an_object"),
        (4, "not_an_object"),
    ]
    assert orjson.loads(decoded.rejections[0].raw) == {"event_id": 3}


def test_record_level_reasons() -> None:
    assert decode_record(b"").rejections[0].reason == "invalid_json"
    assert decode_record(b"42").rejections[0].reason == "not_an_object"
    assert decode_record(b"\xff\x00").rejections[0].reason == "invalid_encoding"
    assert decode_record(b"[]").rejections[0].reason == "empty_batch"
    assert decode_record(b"[{").rejections[0].reason == "invalid_json"
    big = orjson.dumps([sale(str(i)) for i in range(1001)])
    assert decode_record(big).rejections[0].reason == "batch_too_large"
    huge = orjson.dumps({**sale("h"), "pad": "x" * 70_000})
    assert decode_record(huge).rejections[0].reason == "too_large"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    decoded = decode_record(raw)
    assert len(decoded.envelopes) + len(decoded.rejections) >= 1


def test_roundtrip_through_encoder() -> None:
    event = decode_envelope(orjson.dumps(sale("rt")))
    assert decode_envelope(encode_envelope(event)) == event


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 2000,
        b"[" * 1500 + b"]" * 1500,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        orjson.dumps(sale("deep"))[:-1] + b',"pad":' + b"[" * 1500 + b"]" * 1500 + b"}",
        b"[" + orjson.dumps(sale("ok")) + b"," + b"[" * 5000 + b"]" * 5000 + b"]",
    ],
)
@pytest.mark.parametrize("recursion_limit", [1000, 100_000])
def test_nesting_beyond_the_decoders_limit_is_a_rejection(raw: bytes, recursion_limit: int) -> None:
    """Past MAX_DEPTH levels a record is a reason, not an exception, whatever the
    interpreter's recursion limit (web3's py_ecc raises it to 100,000 at import; msgspec
    would then recurse that deep). A batch record that deep is rejected whole."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit)
    try:
        decoded = decode_record(raw)
    finally:
        sys.setrecursionlimit(previous)
    assert decoded.envelopes == []
    assert [(r.reason, r.raw) for r in decoded.rejections] == [("too_deep", raw)]


def test_nesting_within_the_limit_is_judged_as_usual() -> None:
    padded = orjson.dumps(sale("p"))[:-1] + b',"pad":' + b"[" * 900 + b"]" * 900 + b"}"
    assert len(decode_record(padded).envelopes) == 1  # unknown fields are ignored
    assert decode_record(b"[" * 900 + b"]" * 900).rejections[0].reason != "too_deep"


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8_inside_a_string_is_invalid_encoding(bad: bytes) -> None:
    """msgspec raises UnicodeDecodeError (not a DecodeError) for bad UTF-8 inside a string."""
    broken = orjson.dumps(sale("x")).replace(b'"x"', b'"x' + bad + b'"')
    single = decode_record(broken)
    assert [(r.reason, r.raw) for r in single.rejections] == [("invalid_encoding", broken)]
    batch = decode_record(b"[" + orjson.dumps(sale("a")) + b"," + broken + b"]")
    assert [e.event_id for e in batch.envelopes] == ["a"]
    assert [(r.reason, r.index, r.raw) for r in batch.rejections] == [
        ("invalid_encoding", 1, broken)
    ]
