"""Serialized state stays small and bounded however long the history (docs/scoring.md §2)."""

from __future__ import annotations

from tests.scoring.factories import (
    CREATOR,
    at,
    coll_key,
    finding,
    market,
    mint,
    nft_key,
    sale,
    transfer,
    wallet,
    wallet_key,
)
from tests.scoring.helpers import fold
from trustscore_stream.scoring import CollectionReport, apply_report, encode_state


def _tx(i: int) -> str:
    return "0x" + f"{i:064x}"


def _nft_after(trades: int) -> int:
    events = [mint(wallet(1), at(0), creator=CREATOR)]
    for i in range(trades):
        events.append(
            sale(
                wallet(i + 1),
                wallet(i + 2),
                at(1 + i),
                price="1.5",
                tx=_tx(i),
                event_id=f"0x{i:064x}:{i}",
            )
        )
    return len(encode_state(fold(events)[nft_key()]))


def test_nft_state_size() -> None:
    fresh = _nft_after(0)
    busy = _nft_after(40)
    busier = _nft_after(200)
    print(f"\nNFT state: fresh {fresh} B, after 40 trades {busy} B, after 200 trades {busier} B")
    assert fresh < 600
    # ~9.5 KB: each kept sale carries its event id, weight and currency (re-checks of late
    # events need them) and custody keeps its last ownership events in order (§7).
    assert busy < 10_000
    assert busier <= busy + 200  # bounded: the window is full, nothing else grows


def _collection(holders: int, sales: int, transfers: int) -> int:
    events = [mint(wallet(10_000 + i), at(0), token=str(i)) for i in range(holders)]
    for i in range(sales):
        token = str(i % holders)
        seller = wallet(10_000 + i % holders) if i < holders else wallet(50_000 + i - holders)
        events.append(sale(seller, wallet(50_000 + i), at(1 + i / 10), token=token, tx=_tx(i)))
    for i in range(transfers):
        token = str((sales + i) % holders)
        events.append(
            transfer(
                wallet(10_000 + (sales + i) % holders),
                wallet(90_000 + i),
                at(30 + i / 10),
                token=token,
            )
        )
    events += [market(f"{1 + (h % 7) / 10}", at(h)) for h in range(0, 200, 2)]
    events.append(finding(coll_key(), "wash_trading", "medium", 0.6, at(40)))
    return len(encode_state(fold(events)[coll_key()]))


def test_collection_state_size() -> None:
    small = _collection(50, 20, 10)
    large = _collection(1_000, 200, 300)
    print(f"\ncollection state: small {small} B, large (1,000 holders) {large} B")
    assert large < 45_000


def test_wallet_state_size() -> None:
    key = wallet_key(CREATOR)
    flagged = fold([finding(key, "phishing", "high", 0.9, at(0), event_id="0x" + "ab" * 32)])[key]
    creator = flagged
    for i in range(40):
        report = CollectionReport(coll_key(wallet(i)), i, 80.0, 0.9, True, "")
        creator = apply_report(creator, key, report)  # type: ignore[arg-type]
    size_flagged = len(encode_state(flagged))
    size_creator = len(encode_state(creator))
    print(
        f"\nwallet state: with a finding {size_flagged} B, creator of 40 collections "
        f"{size_creator} B"
    )
    assert size_flagged < 400
    assert size_creator < 5_000
