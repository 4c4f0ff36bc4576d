"""The holder book's eviction once full: the smallest holder goes, among equals the lowest
address, exactly as the plain definition below says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trustscore_stream.scoring.collection_health import HOLDER_CAP, HolderBook, move


def reference_move(book: HolderBook, old: str | None, new: str | None) -> HolderBook:
    counts = dict(book.counts)
    other = book.other
    if old:
        if old in counts:
            counts[old] -= 1
            if counts[old] <= 0:
                del counts[old]
        elif other > 0:
            other -= 1
    if new:
        counts[new] = counts.get(new, 0) + 1
        if len(counts) > HOLDER_CAP:
            victim = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))[0][0]
            other += counts.pop(victim)
    return HolderBook(counts, other)


ADDRESSES = [f"0x{i:040x}" for i in range(HOLDER_CAP + 40)]
wallets = st.sampled_from(ADDRESSES)
moves = st.lists(st.tuples(st.none() | wallets, st.none() | wallets), max_size=100)
# A book that starts full (so newcomers evict) or empty.
starts = st.lists(st.integers(1, 3), min_size=HOLDER_CAP, max_size=HOLDER_CAP) | st.just([])


@settings(max_examples=80, deadline=None)
@given(starts, moves)
def test_moves_match_the_definition(
    start: list[int], steps: list[tuple[str | None, str | None]]
) -> None:
    book = expected = HolderBook(dict(zip(ADDRESSES[20:], start, strict=False)))
    for old, new in steps:
        book = move(book, old, new)
        expected = reference_move(expected, old, new)
        assert book == expected
        assert len(book.counts) <= HOLDER_CAP


def test_a_full_book_evicts_the_smallest_lowest_holder() -> None:
    counts = {f"0x{i:040x}": 2 for i in range(HOLDER_CAP)}
    counts["0x" + "0" * 40] = 1  # the smallest holder, replacing the first one
    book = HolderBook(counts)
    after = move(book, None, "0x" + "f" * 40)
    # Both the old single-token holder and the newcomer hold 1: the lower address goes.
    assert "0x" + "0" * 40 not in after.counts
    assert after.counts["0x" + "f" * 40] == 1
    assert after.other == 1 and len(after.counts) == HOLDER_CAP
