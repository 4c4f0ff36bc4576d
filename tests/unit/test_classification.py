from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from tests.stack import CONTRACT, WALLET_A, WALLET_B, fraud, sale, social
from trustscore_stream.events.classification import associations, classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.envelope import Envelope

NOW = datetime.now(UTC)


def event(raw: dict[str, object]) -> Envelope:
    return decode_record(orjson.dumps(raw)).envelopes[0]


def test_categories_and_associations() -> None:
    e = event(sale("s"))
    assert classify(e, NOW).category == "trade"
    assert associations(e) == (
        f"nft:eth:{CONTRACT}:1",
        f"collection:eth:{CONTRACT}",
        f"wallet:eth:{WALLET_A}",
        f"wallet:eth:{WALLET_B}",
    )
    assert classify(event(social("x")), NOW).category == "social"
    assert classify(event(fraud("f")), NOW).category == "risk"


def test_lanes() -> None:
    assert classify(event(fraud("f", "critical", 0.9)), NOW).lane == "critical"
    assert classify(event(fraud("f", "high", 0.9)), NOW).lane == "critical"
    assert classify(event(fraud("f", "low", 0.9)), NOW).lane == "normal"
    assert classify(event(sale("s", price="1.25")), NOW).lane == "normal"
    assert classify(event(sale("s", price="500")), NOW).lane == "critical"  # large sale
    assert classify(event(social("x")), NOW).lane == "bulk"


def test_priority_is_monotonic_in_severity_and_value() -> None:
    severities = ["low", "medium", "high", "critical"]
    values = [classify(event(fraud("f", s, 0.8)), NOW).priority for s in severities]
    assert values == sorted(values)
    prices = ["0.1", "1", "10", "100"]
    values = [classify(event(sale("s", price=p)), NOW).priority for p in prices]
    assert values == sorted(values)


def test_stale_events_sink() -> None:
    fresh = classify(event(sale("s")), NOW).priority
    old = sale("s", occurred_at=(NOW - timedelta(days=3)).isoformat())
    assert classify(event(old), NOW).priority == fresh - 20
    resolved = fraud("f")
    resolved["payload"]["resolved"] = True  # type: ignore[index]
    assert classify(event(resolved), NOW).lane == "normal"
