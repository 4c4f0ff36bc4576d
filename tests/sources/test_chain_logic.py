"""Pure logic of the chain source: reorg tracking, ranges, provider choice, envelopes."""

from __future__ import annotations

import asyncio
from decimal import Decimal, localcontext

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustscore_stream.events.decoding import decode_record
from trustscore_stream.sources.erc721 import (
    TRANSFER_TOPIC,
    ZERO_ADDRESS,
    PaidTx,
    envelopes_for,
    parse_transfer_log,
    wei_to_decimal,
)
from trustscore_stream.sources.providers import ProviderState, choose, provider_label
from trustscore_stream.sources.ranges import BlockRange, is_range_too_large, next_range, split
from trustscore_stream.sources.reorg import BlockTracker, Header, ReorgTooDeep, find_fork_point

NFT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
ALICE = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
BOB = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
MARKET = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"


def topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


def raw_log(
    frm: str, to: str, token: int, tx: str, index: int, block: int = 5
) -> dict[str, object]:
    return {
        "address": NFT,
        "topics": [TRANSFER_TOPIC, topic(frm), topic(to), hex(token)],
        "transactionHash": tx,
        "logIndex": hex(index),
        "blockNumber": hex(block),
        "blockHash": "0x" + "ab" * 32,
    }


# --- reorg tracker --------------------------------------------------------------------


def test_tracker_sees_a_changed_hash_and_a_broken_parent_link() -> None:
    tracker = BlockTracker(window=4)
    assert tracker.remember(10, "0xa") is False
    assert tracker.remember(10, "0xa") is False
    assert tracker.remember(10, "0xb") is True
    assert tracker.parent_matches(Header(11, "0xc", "0xb", 0))
    assert not tracker.parent_matches(Header(11, "0xc", "0xa", 0))
    assert tracker.parent_matches(Header(99, "0xc", "0xanything", 0))  # unknown parent


def test_tracker_keeps_only_its_window_and_forgets_above() -> None:
    tracker = BlockTracker(window=3)
    for n in range(10):
        tracker.remember(n, f"0x{n}")
    assert sorted(tracker.hashes) == [7, 8, 9]
    tracker.forget_between(8, 8)
    assert tracker.snapshot() == [(7, "0x7"), (9, "0x9")]
    tracker.forget_above(7)
    assert tracker.snapshot() == [(7, "0x7")]
    assert BlockTracker.restore([(1, "0x1"), (2, "0x2")]).below(3) == [(2, "0x2"), (1, "0x1")]


def test_fork_point_is_the_highest_remembered_block_still_canonical() -> None:
    tracker = BlockTracker.restore([(n, f"0xold{n}") for n in range(1, 9)])
    canonical = {n: (f"0xold{n}" if n <= 5 else f"0xnew{n}") for n in range(1, 9)}
    asked: list[int] = []

    async def lookup(n: int) -> str:
        asked.append(n)
        return canonical[n]

    assert asyncio.run(find_fork_point(tracker, 9, lookup)) == 5
    assert asked == [8, 7, 6, 5]  # walks down, stops at the first match
    deep = {n: f"0xother{n}" for n in range(1, 9)}

    async def nothing_matches(n: int) -> str:
        return deep[n]

    with pytest.raises(ReorgTooDeep):
        asyncio.run(find_fork_point(tracker, 9, nothing_matches))


# --- ranges ---------------------------------------------------------------------------


def test_next_range_is_bounded_and_stops_at_the_target() -> None:
    assert next_range(10, 9, 100) is None
    assert next_range(10, 10, 100) == BlockRange(10, 10)
    assert next_range(10, 5000, 2000) == BlockRange(10, 2009)
    assert next_range(10, 20, 0) == BlockRange(10, 10)  # a span below 1 still moves


@given(st.integers(0, 10**9), st.integers(0, 10**6))
def test_split_halves_cover_the_range_exactly(first: int, extra: int) -> None:
    whole = BlockRange(first, first + extra)
    left, right = split(whole)
    if whole.size == 1:
        assert (left, right) == (whole, None)
        return
    assert right is not None
    assert left.first == whole.first and right.last == whole.last
    assert left.last + 1 == right.first
    assert abs(left.size - right.size) <= 1


@pytest.mark.parametrize(
    "message",
    [
        "query returned more than 10000 results",
        "block range is too large",
        "exceed maximum block range: 2000",
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
        "eth_getLogs is limited to a 10,000 range; limit exceeded",
        "{'code': -32005, 'message': 'query returned more than 10000 results'}",
    ],
)
def test_range_too_large_messages(message: str) -> None:
    assert is_range_too_large(message)


@pytest.mark.parametrize(
    "message", ["connection refused", "execution reverted", "header not found"]
)
def test_other_errors_are_not_range_errors(message: str) -> None:
    assert not is_range_too_large(message)


# --- providers ------------------------------------------------------------------------


def states(*heads: int | None) -> list[ProviderState]:
    return [ProviderState(f"http://p{i}", f"p{i}", head=h) for i, h in enumerate(heads)]


def test_keeps_the_active_provider_while_it_is_healthy_and_keeps_up() -> None:
    assert choose(states(100, 103), active=0, max_lag=5, now=0) == 0
    assert choose(states(100, 106), active=0, max_lag=5, now=0) == 1  # lags 6 > 5
    assert choose(states(100, 100), active=None, max_lag=5, now=0) == 0  # configured order


def test_failed_provider_is_skipped_until_its_cooldown_ends() -> None:
    pool = states(100, 100)
    pool[0].failed("boom", now=10.0, cooldown_s=5.0)
    assert choose(pool, active=0, max_lag=5, now=11.0) == 1
    pool[0].healthy = True  # its head answers again, but the cooldown still holds
    assert choose(pool, active=1, max_lag=5, now=12.0) == 1
    pool[1].failed("down", now=12.0, cooldown_s=5.0)
    assert choose(pool, active=1, max_lag=5, now=16.0) == 0
    pool[0].healthy = False
    assert choose(pool, active=1, max_lag=5, now=16.0) is None


def test_provider_label_hides_paths_and_keys() -> None:
    assert provider_label("https://mainnet.example.io/v3/SECRETKEY") == "mainnet.example.io"
    assert provider_label("http://user:pw@127.0.0.1:8545/") == "127.0.0.1:8545"


# --- envelopes ------------------------------------------------------------------------


@given(st.integers(0, 10**40))
def test_wei_to_decimal_is_exact(wei: int) -> None:
    text = wei_to_decimal(wei)
    with localcontext() as exact:
        exact.prec = 200  # the default 28 digits would round the reference itself
        assert Decimal(text) == Decimal(wei) / Decimal(10**18)
    assert "e" not in text.lower() and not text.endswith(".")


def test_non_erc721_transfer_logs_are_ignored() -> None:
    erc20 = raw_log(ALICE, BOB, 1, "0x01", 0)
    erc20["topics"] = erc20["topics"][:3]  # type: ignore[index]
    assert parse_transfer_log(erc20) is None
    other = raw_log(ALICE, BOB, 1, "0x01", 0)
    other["topics"] = ["0x" + "11" * 32, *other["topics"][1:]]  # type: ignore[index]
    assert parse_transfer_log(other) is None


def test_mint_transfer_sale_burn_envelopes_decode_with_the_contract_types() -> None:
    logs = [
        raw_log(ZERO_ADDRESS, ALICE, 7, "0x" + "01" * 32, 0),
        raw_log(ALICE, BOB, 7, "0x" + "02" * 32, 1),
        raw_log(BOB, ALICE, 7, "0x" + "03" * 32, 2),  # paid: a sale
        raw_log(ALICE, ZERO_ADDRESS, 7, "0x" + "04" * 32, 3),
    ]
    transfers = [t for t in map(parse_transfer_log, logs) if t is not None]
    txs = {
        "0x" + "01" * 32: PaidTx(0, NFT),
        "0x" + "02" * 32: PaidTx(0, NFT),
        "0x" + "03" * 32: PaidTx(1_250_000_000_000_000_000, MARKET),
    }
    envelopes = envelopes_for(
        transfers,
        txs,
        {5: 1_700_000_000},
        chain="eth",
        currency="ETH",
        marketplaces={MARKET: "testmarket"},
    )
    decoded = decode_record(orjson.dumps(envelopes))
    assert decoded.rejections == []
    assert [e.type for e in decoded.envelopes] == ["mint", "transfer", "sale", "burn"]
    assert envelopes[0]["event_id"] == "0x" + "01" * 32 + ":0"
    assert envelopes[0]["occurred_at"] == "2023-11-14T22:13:20Z"
    assert envelopes[2]["payload"] == {
        "seller": BOB,
        "buyer": ALICE,
        "price": "1.25",
        "currency": "ETH",
        "marketplace": "testmarket",
        "tx_hash": "0x" + "03" * 32,
    }
    assert envelopes[3]["payload"] == {"from": ALICE}


def test_a_paid_transaction_moving_several_tokens_splits_its_price() -> None:
    tx = "0x" + "05" * 32
    transfers = [
        t for t in (parse_transfer_log(raw_log(ALICE, BOB, n, tx, n)) for n in (1, 2)) if t
    ]
    envelopes = envelopes_for(
        transfers,
        {tx: PaidTx(3 * 10**18, None)},
        {5: 0},
        chain="eth",
        currency="ETH",
        marketplaces={},
    )
    assert [e["payload"]["price"] for e in envelopes] == ["1.5", "1.5"]
    assert all("marketplace" not in e["payload"] for e in envelopes)
