"""Pure logic of the pollers: field paths, mapping, conversions, config, anomaly check."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustscore_stream.events.decoding import decode_record
from trustscore_stream.settings import SettingsError
from trustscore_stream.sources.anomaly import AnomalyGuard
from trustscore_stream.sources.fieldpath import FieldPath, PathError
from trustscore_stream.sources.mapping import MappingError, convert
from trustscore_stream.sources.poll_config import parse_poll_config
from trustscore_stream.sources.poller import Conditional, retry_after_seconds

CONTRACT = "0x5af0d9827e0c53e4799bb226655a1de152a425a5"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

CONFIG = """
[[poll]]
name = "floors"
url = "http://127.0.0.1:1/floors"
interval = 30
type = "market_data"
source = "market"
items = "$.data.collections[*]"
event_id = "$.id"
occurred_at = { path = "$.ts", as = "unix_time" }
headers_from_env = { "X-API-Key" = "FLOORS_KEY" }

[poll.fields]
contract = "$.address"
"payload.floor_price" = { path = "$.stats.floor", as = "money" }
"payload.currency" = "ETH"
"payload.holders" = { path = "$.stats['holder count']", as = "int", optional = true }

[poll.anomaly]
factor = 100

[[poll]]
name = "buzz"
url = "https://social.example/v1/mentions"
type = "social_signal"
source = "social"
items = "$[*]"
[poll.fields]
"payload.entity" = "$.entity"
"payload.sentiment" = { path = "$.score", as = "float" }
"payload.mentions" = { path = "$.count", as = "int" }
"payload.platform" = "x"
"""


def sources() -> list[Any]:
    return parse_poll_config(tomllib.loads(CONFIG), {"FLOORS_KEY": "k1"})


# --- field paths ----------------------------------------------------------------------


def test_field_paths() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}], "odd key": 3}, "list": [10, 20, 30]}
    assert FieldPath.parse("$").find(doc) == [doc]
    assert FieldPath.parse("$.a.b[*].c").find(doc) == [1, 2]
    assert FieldPath.parse("$.a.b[-1].c").find(doc) == [2]
    assert FieldPath.parse("$.a['odd key']").find(doc) == [3]
    assert FieldPath.parse('$["list"][1]').find(doc) == [20]
    assert FieldPath.parse("$.a.*").find(doc)[1] == 3
    assert FieldPath.parse("$.missing.x").find(doc) == []
    assert FieldPath.parse("$.list[9]").find(doc) == []
    assert FieldPath.parse("$.list.x").find(doc) == []  # wrong shape: no match, no crash


@pytest.mark.parametrize("text", ["a.b", "$.", "$[", "$..a", "$[x]", "$.a b"])
def test_bad_field_paths_are_refused(text: str) -> None:
    with pytest.raises(PathError):
        FieldPath.parse(text)


@given(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), max_size=6))
def test_dotted_paths_find_nested_values(keys: list[str]) -> None:
    doc: Any = "leaf"
    for key in reversed(keys):
        doc = {key: doc}
    path = "$" + "".join(f".{k}" for k in keys)
    assert FieldPath.parse(path).find(doc) == ["leaf"]


# --- conversions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.25, "1.25"), ("0.0001", "0.0001"), (3, "3"), (1e-7, "0.0000001"), ("2.50", "2.5")],
)
def test_money_is_a_plain_decimal_string(value: object, expected: str) -> None:
    assert convert(value, "money", "x") == expected


@pytest.mark.parametrize("value", [-1, "abc", True, None, float("nan"), float("inf"), [1]])
def test_bad_money_is_a_mapping_error(value: object) -> None:
    with pytest.raises(MappingError, match="x: cannot convert"):
        convert(value, "money", "x")


def test_other_conversions() -> None:
    assert convert("12", "int", "x") == 12
    assert convert(12.0, "int", "x") == 12
    with pytest.raises(MappingError):
        convert(1.5, "int", "x")
    assert convert(1_700_000_000, "unix_time", "x") == "2023-11-14T22:13:20Z"
    assert convert("0.5", "float", "x") == 0.5
    with pytest.raises(MappingError):
        convert("yes", "bool", "x")


# --- mapping and config ---------------------------------------------------------------


def test_a_provider_document_maps_to_valid_envelopes() -> None:
    floors = sources()[0]
    assert floors.headers == {"X-API-Key": "k1"} and floors.interval_s == 30
    document = {
        "data": {
            "collections": [
                {
                    "id": "c1-1",
                    "ts": 1_700_000_000,
                    "address": CONTRACT.upper().replace("X", "x"),
                    "stats": {"floor": 1.25, "holder count": 420},
                },
                {"id": "c1-2", "ts": 1_700_000_060, "address": CONTRACT, "stats": {"floor": "2"}},
            ]
        }
    }
    items = floors.mapping.select_items(document)
    envelopes = [floors.mapping.envelope(item, NOW) for item in items]
    assert envelopes[0] == {
        "type": "market_data",
        "source": "market",
        "schema_version": 1,
        "event_id": "floors:c1-1",
        "occurred_at": "2023-11-14T22:13:20Z",
        "contract": CONTRACT.upper().replace("X", "x"),
        "payload": {"floor_price": "1.25", "currency": "ETH", "holders": 420},
    }
    assert "holders" not in envelopes[1]["payload"]  # optional and absent
    decoded = decode_record(orjson.dumps(envelopes))
    assert decoded.rejections == [] and decoded.envelopes[0].contract == CONTRACT


def test_items_path_naming_a_list_iterates_it() -> None:
    buzz = sources()[1]
    items = [{"entity": "a"}, {"entity": "b"}]
    assert buzz.mapping.select_items(items) == items  # "$[*]"
    plain = replace(buzz.mapping, items=FieldPath.parse("$.data"))
    assert plain.select_items({"data": items}) == items
    assert plain.select_items({"data": {"entity": "a"}}) == [{"entity": "a"}]
    assert plain.select_items({"other": 1}) == []


def test_default_event_id_is_a_content_hash_and_time_is_the_poll_time() -> None:
    buzz = sources()[1]
    item = {"entity": f"collection:eth:{CONTRACT}", "score": 0.4, "count": 12}
    first = buzz.mapping.envelope(item, NOW)
    assert first["event_id"].startswith("buzz:") and len(first["event_id"]) == 5 + 32
    assert buzz.mapping.envelope(dict(reversed(item.items())), NOW) == first  # key order
    assert buzz.mapping.envelope({**item, "count": 13}, NOW)["event_id"] != first["event_id"]
    assert first["occurred_at"] == "2026-11-22T10:00:00Z"
    with pytest.raises(MappingError, match=r"payload.mentions: \$.count matched nothing"):
        buzz.mapping.envelope({"entity": "x", "score": 0.1}, NOW)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.replace('type = "market_data"', 'type = "nope"'), "`type` must be one of"),
        (lambda c: c.replace('source = "market"', 'source = "web"'), "`source` must be one of"),
        (lambda c: c.replace("http://127.0.0.1:1/floors", "ftp://x"), "http"),
        (lambda c: c.replace('"$.address"', '"$.a[x"'), "cannot parse"),
        (lambda c: c.replace("interval = 30", "interval = -1"), "positive number"),
        (lambda c: c.replace('as = "money"', 'as = "euro"'), "`as` must be one of"),
        (lambda c: c.replace('name = "buzz"', 'name = "floors"'), "duplicate name"),
    ],
)
def test_config_errors_name_the_problem(edit: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_poll_config(tomllib.loads(edit(CONFIG)), {"FLOORS_KEY": "k1"})


def test_secret_headers_come_from_the_environment() -> None:
    with pytest.raises(SettingsError, match="FLOORS_KEY"):
        parse_poll_config(tomllib.loads(CONFIG), {})


def test_conditional_request_headers() -> None:
    state = Conditional()
    assert state.request_headers() == {}
    state.update({"ETag": '"v1"', "Last-Modified": "Sun, 22 Nov 2026 10:00:00 GMT"})
    assert state.request_headers() == {
        "If-None-Match": '"v1"',
        "If-Modified-Since": "Sun, 22 Nov 2026 10:00:00 GMT",
    }
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None


# --- anomaly --------------------------------------------------------------------------


def d(value: str) -> Decimal:
    return Decimal(value)


def test_a_floor_100x_off_the_median_is_flagged_and_kept_out_of_the_median() -> None:
    guard = AnomalyGuard(factor=100, window=5, min_samples=3, confirm_after=3)
    for value in ("1.0", "1.2", "0.9"):
        assert guard.check("c", d(value)).ok  # warming up
    verdict = guard.check("c", d("150"))
    assert not verdict.ok and "100x off the recent median 1.0" in verdict.reason
    assert not guard.check("c", d("0.005")).ok  # below median/100
    assert guard.check("c", d("1.1")).ok  # back to normal: the suspects are forgotten
    assert guard.check("other", d("150")).ok  # per key


def test_a_lasting_level_change_is_adopted_after_agreeing_anomalies() -> None:
    guard = AnomalyGuard(factor=100, window=5, min_samples=3, confirm_after=3)
    for value in ("10", "11", "9"):
        guard.check("c", d(value))
    assert not guard.check("c", d("0.01")).ok
    assert not guard.check("c", d("0.012")).ok
    adopted = guard.check("c", d("0.011"))
    assert adopted.ok and "new level" in adopted.reason
    assert guard.check("c", d("0.013")).ok
    assert not guard.check("c", d("10")).ok  # the old level is now the anomaly


def test_wild_values_that_disagree_are_never_adopted() -> None:
    guard = AnomalyGuard(factor=100, window=5, min_samples=3, confirm_after=3)
    for value in ("1", "1", "1"):
        guard.check("c", d(value))
    for value in ("1000", "0.0001", "5000", "0.00001", "900"):
        assert not guard.check("c", d(value)).ok
