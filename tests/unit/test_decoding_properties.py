"""Properties of the record decoder over hostile input: it never raises, and every envelope
of a record is accounted for exactly once, as an accepted envelope or a rejection with a
known reason (the invariant the fuzzing drill checks on a real worker)."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz_corpus import corpus, dumps, item, mutate, valid
from trustscore_stream.events.decoding import REASONS, DecodedRecord, decode_record
from trustscore_stream.events.envelope import decode_envelope, encode_envelope

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def items_of(raw: bytes) -> list[Any] | None:
    """The top-level items of a batch record, if it is a JSON array we can read."""
    try:
        # Invalid UTF-8 inside a string is that item's problem, not the array's: the
        # decoder judges such an item alone, so the oracle reads past it too.
        value = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def check_accounting(raw: bytes, decoded: DecodedRecord) -> None:
    assert all(r.reason in REASONS and r.detail for r in decoded.rejections)
    for envelope in decoded.envelopes:  # accepted means valid, and stable through a re-encode
        assert decode_envelope(encode_envelope(envelope)) == envelope
    indexed = [r for r in decoded.rejections if r.index is not None]
    if not indexed and len(decoded.rejections) == 1 and not decoded.envelopes:
        return  # the record as a whole is rejected: one dead letter holding all its bytes
    if not decoded.is_batch:
        assert len(decoded.envelopes) + len(decoded.rejections) == 1
        return
    items = items_of(raw)
    assert items is not None
    assert (
        len(decoded.envelopes) + len(indexed)
        == len(items)
        == len(decoded.rejections) + len(decoded.envelopes)
    )
    indices = [r.index for r in indexed]
    assert indices == sorted(set(indices))
    assert all(i is not None and 0 <= i < len(items) for i in indices)


@settings(max_examples=300)
@given(st.randoms(use_true_random=False), st.integers(0, 10**6))
def test_mutated_items_are_accounted_for(rng: random.Random, n: int) -> None:
    raw = item(rng, n, seen=[valid(rng, f"fz-{n}")])[1]
    decoded = decode_record(raw)
    check_accounting(raw, decoded)


@settings(max_examples=200)
@given(st.randoms(use_true_random=False), st.lists(st.integers(0, 10**6), min_size=1, max_size=30))
def test_batch_records_are_judged_item_by_item(rng: random.Random, ids: list[int]) -> None:
    parts = [item(rng, n, seen=[], in_batch=True)[1] for n in ids]
    raw = b"[" + b",".join(parts) + b"]"
    check_accounting(raw, decode_record(raw))


@given(st.randoms(use_true_random=False), json_values)
def test_any_json_value_in_any_field_is_judged(rng: random.Random, value: Any) -> None:
    envelope = valid(rng, "p")
    path = rng.choice([("event_id",), ("type",), ("occurred_at",), ("payload",)])
    if isinstance(envelope["payload"], dict) and envelope["payload"] and rng.random() < 0.5:
        path = ("payload", rng.choice(list(envelope["payload"])))
    target = envelope
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    raw = dumps(envelope)
    decoded = decode_record(raw)
    check_accounting(raw, decoded)
    assert len(decoded.envelopes) + len(decoded.rejections) == 1


@given(st.randoms(use_true_random=False))
def test_mutations_of_a_valid_envelope_never_raise(rng: random.Random) -> None:
    _, raw = mutate(rng, valid(rng, "m"))
    check_accounting(raw, decode_record(raw))


def test_the_drill_corpus_decodes_without_raising() -> None:
    records = corpus(seed=1, records=150)
    for _, raw in records:
        check_accounting(raw, decode_record(raw))
    assert corpus(seed=1, records=150) == records  # a seed names one corpus
