"""The adoption rule (scoring/history.py): a restored entity continues from the newest
version its history rows hold, and adopting the row of a publication gives back exactly
the `Published` that publication left behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from trustscore_stream.scoring.history import (
    FactorRow,
    HistoryRow,
    adopt,
    decode_history,
    encode_history,
    history_row,
    published_of,
)
from trustscore_stream.scoring.model import FactorScore, ScoreResult, level_for
from trustscore_stream.scoring.publication import Published, is_new_version, publish

ENTITY = "collection:eth:0x" + "ab" * 20
T0 = datetime(2026, 11, 22, 10, 15, 3, 120_000, tzinfo=UTC)
THRESHOLD = 0.5


def result(score: float) -> ScoreResult:
    factors = {
        "market_integrity": FactorScore(score, 0.25, 0.8, (f"at {score}",)),
        "provenance": FactorScore(100.0 - score, 0.75, 0.5, ()),
    }
    return ScoreResult(score, level_for(score), 0.7, factors)


def publications(scores: list[float]) -> list[tuple[Published, HistoryRow]]:
    """Each score published in turn (skipping repeats) as the engine does: the `Published`
    after it and the history row sent for it."""
    out: list[tuple[Published, HistoryRow]] = []
    current = Published()
    for i, score in enumerate(scores):
        r = result(score)
        if not is_new_version(current, r):
            continue
        current, publication = publish(
            ENTITY, current, r, f"e{i}", T0 + timedelta(seconds=i), THRESHOLD
        )
        out.append((current, history_row(publication, current.emitted)))
    return out


# Moves below and above the threshold, and a level change (61.0 -> 59.0).
SCORES = [70.0, 70.2, 70.3, 71.0, 61.0, 59.0, 59.3, 58.9]


def test_adopting_a_row_gives_back_what_its_publication_left() -> None:
    published = publications(SCORES)
    assert [p.version for p, _ in published] == list(range(1, len(SCORES) + 1))
    # Some versions were not broadcast: `emitted` lags the score there.
    assert any(p.emitted != p.score for p, _ in published)
    for k, (after, _) in enumerate(published):
        before = published[k - 1][0] if k else Published()
        rows = [row for _, row in published]
        assert adopt(before, rows, THRESHOLD) == published[-1][0]
        assert adopt(before, rows[: k + 1], THRESHOLD) == after
        # Through the topic's encoding too (datetimes, floats, the factors as raw JSON).
        decoded = [r for record in encode_history(rows[: k + 1]) for r in decode_history(record)]
        assert adopt(before, decoded, THRESHOLD) == after


def test_rows_at_or_below_the_restored_version_are_ignored() -> None:
    published = publications(SCORES)
    restored = published[4][0]
    rows = [row for _, row in published[:5]]
    assert adopt(restored, rows, THRESHOLD) is restored
    assert adopt(restored, [], THRESHOLD) is restored
    # A restored state ahead of the rows it is shown (they were read from too early).
    assert adopt(published[-1][0], [row for _, row in published], THRESHOLD) is published[-1][0]


def test_out_of_order_rows_keep_the_highest_version_and_the_first_copy_of_a_number() -> None:
    published = publications(SCORES)
    rows = [row for _, row in published]
    shuffled = [rows[6], rows[2], rows[7], rows[5], rows[0]]
    assert adopt(Published(), shuffled, THRESHOLD).version == 8
    assert adopt(Published(), shuffled, THRESHOLD).score == rows[7].score
    # The same number twice (a version re-issued before this fix): the first one read
    # wins, as in the database, whose writer keeps the first copy of (entity, version).
    again = msgspec.structs.replace(rows[7], score=12.5, level="high_risk")
    assert adopt(Published(), [rows[7], again], THRESHOLD).score == rows[7].score
    assert adopt(Published(), [again, rows[7]], THRESHOLD).score == 12.5


class OldHistoryRow(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """HistoryRow as written before `emitted` existed."""

    entity: str
    version: int
    score: float
    level: str
    confidence: float
    model_version: str
    factors: msgspec.Raw
    factors_changed: list[str]
    cause_event_id: str | None
    at: datetime


def old_record(rows: list[HistoryRow]) -> bytes:
    old = [OldHistoryRow(*msgspec.structs.astuple(r)[:10]) for r in rows]
    return msgspec.json.encode(old)


def test_history_rows_stay_compatible_both_ways() -> None:
    rows = [row for _, row in publications(SCORES)]
    # Old records decode, without `emitted`.
    decoded = decode_history(old_record(rows))
    assert [r.emitted for r in decoded] == [None] * len(rows)
    assert [msgspec.structs.replace(r, emitted=None) for r in rows] == decoded
    # New records decode with the old struct (a worker of the previous release).
    (new,) = encode_history(rows)
    assert msgspec.json.decode(new, type=list[OldHistoryRow]) == msgspec.json.decode(
        old_record(rows), type=list[OldHistoryRow]
    )


def test_old_rows_get_emitted_by_the_publication_rule() -> None:
    published = publications(SCORES)
    old = decode_history(old_record([row for _, row in published]))
    for k, (after, _) in enumerate(published):
        before = published[k - 1][0] if k else Published()
        # From the version just below, the rule reproduces `emitted` exactly.
        assert adopt(before, old[: k + 1], THRESHOLD) == after
        assert published_of(old[k], before, THRESHOLD) == after


def test_a_row_names_its_factor_values() -> None:
    row = HistoryRow(
        ENTITY,
        3,
        42.0,
        "caution",
        0.5,
        "1",
        msgspec.Raw(msgspec.json.encode({"liquidity": FactorRow(40.5, 0.2, ("thin",))})),
        ["liquidity"],
        "e9",
        T0,
        emitted=41.7,
    )
    assert published_of(row, Published(), THRESHOLD) == Published(
        version=3,
        score=42.0,
        level="caution",
        at="2026-11-22T10:15:03.120Z",
        factors={"liquidity": 40.5},
        emitted=41.7,
    )
