"""Cross-partition links (scoring/links.py): when reports and summaries are sent, to whom,
and that receiving them is idempotent and last-writer-wins."""

from __future__ import annotations

import msgspec
import pytest

from tests.scoring.factories import (
    CREATOR,
    OTHER_CONTRACT,
    at,
    coll_key,
    finding,
    verified,
    wallet_key,
)
from trustscore_stream.scoring import (
    CollectionState,
    WalletState,
    apply_all,
    apply_report,
    score_collection,
    summarize_wallet,
)
from trustscore_stream.scoring.creator import CollectionReport, WalletSummary
from trustscore_stream.scoring.links import (
    MAX_RECORD_BYTES,
    FlaggedIndex,
    Replica,
    ReportLink,
    SentReport,
    SummaryLink,
    decode_links,
    encode_links,
    flags_owners,
    meaningful,
    receive_summary,
    reindex,
    replica_collections,
    report_to_send,
    summary_to_send,
    targets,
)

PARTITIONS = 8
CREATOR_ID = wallet_key(CREATOR)


def partition_of(collection: str) -> int:
    # Deterministic stand-in for murmur2: the tests name partitions explicitly.
    return 3 if collection == coll_key() else 5


def collection(*events_: object, contract: str | None = None) -> CollectionState:
    key = coll_key(contract) if contract else coll_key()
    state = apply_all({}, events_)[key]  # type: ignore[arg-type]
    assert isinstance(state, CollectionState)
    return state


def creator_wallet(*reports: CollectionReport, events: tuple[object, ...] = ()) -> WalletState:
    state = WalletState(id=CREATOR_ID)
    if events:
        found = apply_all({CREATOR_ID: state}, events)[CREATOR_ID]  # type: ignore[arg-type]
        assert isinstance(found, WalletState)
        state = found
    for report in reports:
        state = apply_report(state, CREATOR_ID, report)
    return state


def summarize(wallet: WalletState) -> WalletSummary:
    summary = summarize_wallet(wallet)
    assert summary is not None
    return summary


def report(coll: str, health: float = 70.0, t: int = 1, **kw: object) -> CollectionReport:
    return CollectionReport(coll, t, health, 0.5, **kw)  # type: ignore[arg-type]


def test_report_of_a_collection_without_creator_is_not_sent() -> None:
    assert report_to_send(CollectionState(id=coll_key()), None, at(1)) is None


def test_report_is_sent_once_then_only_on_meaningful_change() -> None:
    coll = collection(verified(True, at(0), creator=CREATOR))
    first = report_to_send(coll, None, at(1))
    assert first is not None and first.wallet == CREATOR_ID
    assert first.report.collection == coll.id and first.report.verified is True
    # Same state an hour later: the report time moved, nothing else did.
    assert report_to_send(coll, first, at(2)) is None
    flagged = collection(
        verified(True, at(0), creator=CREATOR),
        finding(coll.id, "rug_pull", "critical", 0.95, at(1)),
    )
    again = report_to_send(flagged, first, at(2))
    assert again is not None and "rug_pull" in again.report.flagged


def test_meaningful_ignores_health_noise_below_a_point() -> None:
    base = report(coll_key(), 70.0)
    assert meaningful(None, base)
    assert not meaningful(base, report(coll_key(), 70.9, t=2))
    assert meaningful(base, report(coll_key(), 71.0, t=2))
    assert meaningful(base, report(coll_key(), 70.0, t=2, verified=False))
    assert meaningful(base, report(coll_key(), 70.0, t=2, flagged="rug_pull"))
    unsure = CollectionReport(coll_key(), 2, 70.0, 0.05)
    assert meaningful(base, unsure)  # below MIN_HEALTH_CONFIDENCE the health is ignored


def test_a_new_creator_gets_the_report_even_if_nothing_else_changed() -> None:
    coll = collection(verified(True, at(0), creator=CREATOR))
    first = report_to_send(coll, None, at(1))
    assert first is not None
    other = SentReport(first.id, wallet_key("0x" + "99" * 20), first.report)
    assert report_to_send(coll, other, at(1)) is not None


def test_summary_goes_to_the_partitions_of_the_creators_collections() -> None:
    wallet = creator_wallet(report(coll_key()), report(coll_key(OTHER_CONTRACT)))
    planned = summary_to_send(wallet, None, 1000, PARTITIONS, partition_of, "ev-1")
    assert planned is not None
    memory, sends = planned
    assert memory.targets == (3, 5) and memory.n == 1000
    assert sorted(p for p, _ in sends) == [3, 5]
    assert all(link.summary is not None and link.n == 1000 for _, link in sends)
    # Nothing new: nothing sent, even later.
    assert summary_to_send(wallet, memory, 5000, PARTITIONS, partition_of, "ev-2") is None


def test_flagged_wallet_is_broadcast_and_cleared_where_no_longer_needed() -> None:
    flag = finding(CREATOR_ID, "phishing", "high", 0.9, at(1), event_id="f-1")
    wallet = creator_wallet(report(coll_key()), events=(flag,))
    planned = summary_to_send(wallet, None, 1000, PARTITIONS, partition_of, "f-1")
    assert planned is not None
    memory, sends = planned
    assert memory.targets == tuple(range(PARTITIONS))
    assert sorted(p for p, _ in sends) == list(range(PARTITIONS))

    resolved = finding(CREATOR_ID, "phishing", "high", 0.9, at(2), resolved=True)
    cleared_wallet = creator_wallet(report(coll_key()), events=(flag, resolved))
    # The clock went back (another worker): the number still grows.
    planned = summary_to_send(cleared_wallet, memory, 10, PARTITIONS, partition_of, "f-2")
    assert planned is not None
    after, sends = planned
    assert after.n == 1001 and after.targets == (3,)
    by_partition = {p: link for p, link in sends}
    assert set(by_partition) == set(range(PARTITIONS))
    assert by_partition[3].summary is not None and not by_partition[3].summary.findings
    assert all(by_partition[p].summary is None for p in range(PARTITIONS) if p != 3)


def test_wallet_with_nothing_to_say_sends_nothing_until_it_had_something() -> None:
    empty = WalletState(id=CREATOR_ID)
    assert summary_to_send(empty, None, 1000, PARTITIONS, partition_of, "e") is None
    flag = finding(CREATOR_ID, "phishing", "high", 0.9, at(1))
    resolved = finding(CREATOR_ID, "phishing", "high", 0.9, at(2), resolved=True)
    planned = summary_to_send(creator_wallet(events=(flag,)), None, 1, PARTITIONS, partition_of, "")
    assert planned is not None
    memory, _ = planned
    gone = creator_wallet(events=(flag, resolved))
    planned = summary_to_send(gone, memory, 2, PARTITIONS, partition_of, "")
    assert planned is not None
    after, sends = planned
    assert after.targets == () and len(sends) == PARTITIONS
    assert all(link.summary is None for _, link in sends)


def test_targets_and_flags() -> None:
    assert targets(None, PARTITIONS, partition_of) == ()
    creator_only = WalletSummary(id=CREATOR_ID, collections={coll_key(): report(coll_key())})
    assert not flags_owners(creator_only)
    assert targets(creator_only, PARTITIONS, partition_of) == (3,)


def test_receive_summary_is_last_writer_wins_and_idempotent() -> None:
    summary = WalletSummary(id=CREATOR_ID, collections={coll_key(): report(coll_key())})
    first = receive_summary(None, SummaryLink(CREATOR_ID, 5, "c", summary))
    assert first == Replica(CREATOR_ID, 5, summary)
    assert receive_summary(first, SummaryLink(CREATOR_ID, 5, "c", summary)) is None  # repeat
    assert receive_summary(first, SummaryLink(CREATOR_ID, 4, "c", None)) is None  # older
    cleared = receive_summary(first, SummaryLink(CREATOR_ID, 6, "c", None))
    assert cleared == Replica(CREATOR_ID, 6, None)
    assert replica_collections(first, cleared) == {coll_key()}


def test_links_round_trip_and_split_into_bounded_records() -> None:
    links = [ReportLink(CREATOR_ID, f"ev-{i}", report(coll_key(), t=i)) for i in range(3000)] + [
        SummaryLink(CREATOR_ID, 7, "ev", None)
    ]
    records = list(encode_links(links))
    assert len(records) > 1
    assert all(len(r) <= MAX_RECORD_BYTES for r in records)
    decoded = [link for r in records for link in decode_links(r)]
    assert decoded == links
    with pytest.raises(msgspec.ValidationError):
        decode_links(b'[["nonsense", 1]]')


def test_creator_reputation_of_b_falls_when_a_is_flagged() -> None:
    """The end-to-end meaning, purely: A's report reaches B's score through the summary."""
    a = collection(
        verified(True, at(0), creator=CREATOR),
        finding(coll_key(), "rug_pull", "critical", 0.95, at(1)),
    )
    b = collection(
        verified(True, at(0), creator=CREATOR, contract=OTHER_CONTRACT), contract=OTHER_CONTRACT
    )
    clean_a = report_to_send(collection(verified(True, at(0), creator=CREATOR)), None, at(2))
    flagged_a = report_to_send(a, None, at(2))
    assert clean_a is not None and flagged_a is not None

    def creator_reputation(sent: SentReport) -> float:
        wallet = creator_wallet(sent.report)
        planned = summary_to_send(wallet, None, 1, PARTITIONS, partition_of, "")
        assert planned is not None
        summary = planned[1][0][1].summary
        return score_collection(b, summary, at(2)).factors["creator_reputation"].value

    assert creator_reputation(flagged_a) < creator_reputation(clean_a) - 10


def test_flagged_index_follows_the_replicas() -> None:
    flag = finding(CREATOR_ID, "phishing", "high", 0.9, at(1))
    flagged = summarize(creator_wallet(events=(flag,)))
    index = reindex(None, Replica(CREATOR_ID, 1, flagged))
    assert index == FlaggedIndex(frozenset({CREATOR_ID}))
    assert reindex(index, Replica(CREATOR_ID, 2, flagged)) is None  # unchanged
    creator_only = WalletSummary(id=CREATOR_ID, collections={coll_key(): report(coll_key())})
    assert reindex(index, Replica(CREATOR_ID, 3, creator_only)) == FlaggedIndex()
    assert reindex(None, Replica(CREATOR_ID, 3, None)) is None
