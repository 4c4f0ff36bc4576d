from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from trustscore_stream.events.dedup import BUCKET_SECONDS, MAX_CHUNK_BYTES, DedupMemory


def test_remember_and_checkpoint_chunks() -> None:
    memory = DedupMemory(retention_s=7 * 86400, max_ids=100)
    assert memory.remember("a", 0.0) and memory.remember("b", 1.0)
    assert not memory.remember("a", 2.0)
    assert memory.take_pending(3.0) == [("0:0", ["a", "b"])]
    assert memory.take_pending(4.0) == []  # nothing new: no table write
    assert memory.remember("c", 5.0)
    assert memory.take_pending(5.0) == [("0:1", ["c"])]


def test_restore_from_chunks() -> None:
    memory = DedupMemory(retention_s=86400, max_ids=100)
    memory.load_chunk("5:3", ["x", "y"])
    assert "x" in memory and not memory.remember("y", 5 * BUCKET_SECONDS)
    assert memory.remember("z", 5 * BUCKET_SECONDS)
    assert memory.take_pending(5 * BUCKET_SECONDS) == [("5:4", ["z"])]  # seq continues


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


def test_a_big_checkpoint_is_split_into_chunks_under_the_record_limit() -> None:
    memory = DedupMemory(retention_s=86400, max_ids=10**6)
    ids = [f"sim-7-{i:012d}-{'x' * 20}" for i in range(50_000)]  # ~2.2 MB as one array
    for event_id in ids:
        memory.remember(event_id, 0.0)
    chunks = memory.take_pending(0.0)
    assert len(chunks) > 1
    assert all(len(orjson.dumps(chunk_ids)) <= MAX_CHUNK_BYTES for _, chunk_ids in chunks)
    assert [i for _, chunk_ids in chunks for i in chunk_ids] == ids
    assert [key for key, _ in chunks] == [f"0:{n}" for n in range(len(chunks))]
    restored = DedupMemory(retention_s=86400, max_ids=10**6)
    for key, chunk_ids in chunks:
        restored.load_chunk(key, chunk_ids)
    assert all(i in restored for i in ids)
    assert restored.take_pending(0.0) == []
