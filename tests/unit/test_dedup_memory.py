from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trustscore_stream.events.dedup import BUCKET_SECONDS, DedupMemory


def test_remember_and_checkpoint_chunks() -> None:
    memory = DedupMemory(retention_s=7 * 86400, max_ids=100)
    assert memory.remember("a", 0.0) and memory.remember("b", 1.0)
    assert not memory.remember("a", 2.0)
    chunk = memory.take_pending(3.0)
    assert chunk == ("0:0", ["a", "b"])
    assert memory.take_pending(4.0) is None  # nothing new: no table write
    assert memory.remember("c", 5.0)
    assert memory.take_pending(5.0) == ("0:1", ["c"])


def test_restore_from_chunks() -> None:
    memory = DedupMemory(retention_s=86400, max_ids=100)
    memory.load_chunk("5:3", ["x", "y"])
    assert "x" in memory and not memory.remember("y", 5 * BUCKET_SECONDS)
    assert memory.remember("z", 5 * BUCKET_SECONDS)
    assert memory.take_pending(5 * BUCKET_SECONDS) == ("5:4", ["z"])  # seq continues


def test_retention_window_forgets_whole_buckets() -> None:
    memory = DedupMemory(retention_s=2 * BUCKET_SECONDS, max_ids=100)
    memory.remember("old", 0.0)
    memory.take_pending(0.0)
    memory.remember("new", 3 * BUCKET_SECONDS)
    memory.take_pending(3 * BUCKET_SECONDS)
    assert memory.expire(3 * BUCKET_SECONDS) == ["0:0"]
    assert "old" not in memory and "new" in memory


def test_cap_drops_oldest_first() -> None:
    memory = DedupMemory(retention_s=10**9, max_ids=3)
    for i in range(5):
        memory.remember(f"e{i}", float(i * BUCKET_SECONDS))
        memory.take_pending(float(i * BUCKET_SECONDS))
    dropped = memory.expire(5.0 * BUCKET_SECONDS)
    assert dropped == ["0:0", "1:1"]
    assert len(memory) == 3 and "e4" in memory


def test_failed_checkpoint_forgets_pending() -> None:
    memory = DedupMemory(retention_s=86400, max_ids=100)
    memory.remember("a", 0.0)
    memory.discard_pending()
    assert memory.remember("a", 0.0)  # will be processed again, not lost


@given(st.lists(st.sampled_from([f"id{i}" for i in range(30)]), max_size=200))
def test_each_id_passes_once(ids: list[str]) -> None:
    memory = DedupMemory(retention_s=86400, max_ids=1000)
    passed = [i for i in ids if memory.remember(i, 0.0)]
    assert sorted(passed) == sorted(set(ids))
