"""Frequency management of notifications (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trustscore_stream.notifications.pacing import Pacing, PacingRules, flush, pace
from trustscore_stream.notifications.records import dedup_key, notification_id
from trustscore_stream.notifications.significance import Signal

RULES = PacingRules(cooldown_s=600, cap_per_hour=3, digest_interval_s=60, digest_max=5)
NFT = "nft:eth:0x" + "ab" * 20 + ":1"


def signal(kind: str = "score_change", severity: str = "medium", at: float = 0.0) -> Signal:
    return Signal(kind=kind, severity=severity, entity=NFT, cause_event_id="e", at=at, facts={})


def test_a_flood_is_one_notification_then_a_digest() -> None:
    state, sent_total, digests = Pacing(), 0, []
    for i in range(100):  # 100 significant changes in 99 seconds
        state, send, digest = pace(state, [signal(at=i)], float(i), RULES)
        sent_total += len(send)
        if digest is not None:
            digests.append(digest)
    assert sent_total == 1
    assert len(digests) == 1 and digests[0].count == 61  # items 1..61 grouped, due at t=61
    assert len(digests[0].items) == RULES.digest_max  # the newest five
    assert state.digest_count == 38 and state.digest_since == 62.0


def test_critical_is_never_delayed_and_low_always_grouped() -> None:
    state = Pacing()
    for i in range(10):
        state, send, _ = pace(state, [signal("fraud_finding", "critical", i)], float(i), RULES)
        assert len(send) == 1
    state, send, _ = pace(Pacing(), [signal(severity="low")], 0.0, RULES)
    assert send == [] and len(state.digest) == 1


def test_the_hourly_cap_groups_the_rest() -> None:
    state, sent = Pacing(), 0
    kinds = ["score_change", "anomaly", "trend_reversal", "price_movement", "score_threshold"]
    for i, kind in enumerate(kinds):
        state, send, _ = pace(state, [signal(kind)], float(i), RULES)
        sent += len(send)
    assert sent == RULES.cap_per_hour and len(state.digest) == 2


def test_the_timer_flushes_a_due_digest() -> None:
    state, _, _ = pace(Pacing(), [signal(severity="low")], 0.0, RULES)
    assert flush(state, 59.0, RULES)[1] is None
    state, digest = flush(state, 60.0, RULES)
    assert digest is not None and digest.count == 1 and state.digest == ()


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["low", "medium", "high", "critical"]), st.floats(0, 10)),
        max_size=200,
    )
)
def test_nothing_is_lost_and_state_stays_bounded(items: list[tuple[str, float]]) -> None:
    state, now, sent, grouped = Pacing(), 0.0, 0, 0
    for severity, gap in items:
        now += gap
        state, send, digest = pace(state, [signal(severity=severity, at=now)], now, RULES)
        sent += len(send)
        grouped += digest.count if digest is not None else 0
        assert len(state.digest) <= RULES.digest_max and len(state.sent_at) <= RULES.cap_per_hour
    assert sent + grouped + state.digest_count == len(items)


def test_ids_are_derived_from_the_cause() -> None:
    key = dedup_key("u1", NFT, "score_threshold", "ev-1")
    assert key == dedup_key("u1", NFT, "score_threshold", "ev-1")
    assert key != dedup_key("u2", NFT, "score_threshold", "ev-1")
    assert len(notification_id(key)) == 32


def test_fraud_evidence_lines_are_read_back_as_findings() -> None:
    from trustscore_stream.notifications.records import alerts
    from trustscore_stream.scoring.fraud import FindingRecord, describe

    line = describe(
        "rug_pull", FindingRecord(severity=3, confidence=0.9, t=0, event_id="ev-9"), "x"
    )
    evidence = {
        "fraud_risk": [line, "no unresolved fraud findings"],
        "market_integrity": ["circular trade among 3 wallets (a, b, c)", "no wash trading"],
    }
    findings, severe, seen = alerts(evidence, ())
    assert [(f.finding, f.severity, f.confidence, f.event_id) for f in findings] == [
        ("rug_pull", "critical", 0.9, "ev-9")
    ]
    assert severe == ("circular trade among 3 wallets (a, b, c)",)
    assert alerts(evidence, seen)[:2] == ((), ())  # reported once


def test_group_adds_a_held_signal_to_the_digest() -> None:
    from trustscore_stream.notifications.pacing import group

    state = group(Pacing(), signal(), 5.0, RULES)
    state = group(state, signal(), 7.0, RULES)
    assert (len(state.digest), state.digest_count, state.digest_since) == (2, 2, 5.0)
    assert flush(state, 65.0, RULES)[1] is not None
