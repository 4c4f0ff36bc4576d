"""The live stream's fan-out and replay (pure: no broker, no web server)."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustscore_stream.live import position as positions
from trustscore_stream.live.channels import FIREHOSE, score_channels, user_channel
from trustscore_stream.live.frames import frame, single_line
from trustscore_stream.live.hub import Hub, HubLimits, LimitExceeded
from trustscore_stream.live.replay import Entry, ReplayBuffer, ReplayGap

NFT = "nft:eth:0x" + "ab" * 20 + ":7"
COLLECTION = "collection:eth:0x" + "ab" * 20
OTHER = "collection:eth:0x" + "cd" * 20


def parse(frames: list[bytes]) -> list[tuple[str, str, bytes]]:
    out = []
    for raw in b"".join(frames).split(b"\n\n"):
        if not raw:
            continue
        fields = dict(line.split(b": ", 1) for line in raw.split(b"\n"))
        out.append((fields[b"id"].decode(), fields[b"event"].decode(), fields[b"data"]))
    return out


def test_channels_of_a_score_change() -> None:
    assert score_channels(NFT) == (NFT, COLLECTION, FIREHOSE)
    assert score_channels(COLLECTION) == (COLLECTION, FIREHOSE)
    assert user_channel("u1") == "user:u1"


def test_frames_and_single_line_data() -> None:
    assert frame("p1.0", "score", b"{}") == b"id: p1.0\nevent: score\ndata: {}\n\n"
    assert single_line(b'{\n "a": 1\r\n}') == b'{ "a": 1}'


def test_positions_round_trip_and_reject_foreign_ids() -> None:
    assert positions.decode(positions.encode([3, 0, 12]), 3) == (3, 0, 12)
    for bad in ("", "3.0.12", "p1.3.0", "p1.a.b.c", "p1.-1.0.0"):
        with pytest.raises(positions.InvalidPosition):
            positions.decode(bad, 3)


def test_a_collection_stream_gets_its_nfts_and_nothing_else() -> None:
    hub = Hub(2, HubLimits())
    client = hub.open(frozenset({COLLECTION}), None, None).client
    hub.dispatch(0, 0, score_channels(NFT), "score", b"1")
    hub.dispatch(1, 0, score_channels(OTHER), "score", b"2")
    hub.dispatch(0, 1, score_channels(COLLECTION), "score", b"3")
    assert [data for _, _, data in parse(client.take())] == [b"1", b"3"]


def test_one_frame_per_record_for_overlapping_channels() -> None:
    hub = Hub(1, HubLimits())
    client = hub.open(frozenset({NFT, COLLECTION, FIREHOSE}), None, None).client
    hub.dispatch(0, 0, score_channels(NFT), "score", b"1")
    assert len(parse(client.take())) == 1


def test_a_slow_client_is_cut_off_and_the_others_keep_receiving() -> None:
    cut: list[str] = []
    hub = Hub(1, HubLimits(queue_frames=3), on_disconnect=cut.append)
    slow = hub.open(frozenset({FIREHOSE}), None, None).client
    aborted: list[bool] = []
    slow.abort = lambda: aborted.append(True)
    fast = hub.open(frozenset({FIREHOSE}), None, None).client
    received = 0
    for offset in range(10):
        hub.dispatch(0, offset, score_channels(COLLECTION), "score", b"x")
        received += len(fast.take())  # the fast client reads every frame at once
    assert received == 10
    assert slow.closed == "slow" and aborted == [True] and cut == ["slow"]
    assert hub.clients == {fast}


def test_streams_per_user_and_per_worker_are_limited() -> None:
    hub = Hub(1, HubLimits(streams_per_user=3, streams_total=5))
    opened = [hub.open(frozenset({"user:u1"}), "u1", None).client for _ in range(3)]
    with pytest.raises(LimitExceeded):
        hub.open(frozenset({"user:u1"}), "u1", None)
    hub.close(opened[0])
    hub.open(frozenset({"user:u1"}), "u1", None)  # a closed stream frees its place
    hub.open(frozenset({FIREHOSE}), None, None)
    hub.open(frozenset({FIREHOSE}), None, None)
    with pytest.raises(LimitExceeded):
        hub.open(frozenset({FIREHOSE}), None, None)


async def test_wait_returns_on_a_frame_and_on_a_ping_tick() -> None:
    hub = Hub(1, HubLimits())
    busy = hub.open(frozenset({FIREHOSE}), None, None).client
    idle = hub.open(frozenset({OTHER}), None, None).client
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, hub.dispatch, 0, 0, (FIREHOSE,), "score", b"1")
    await asyncio.wait_for(busy.wait(), 5)
    assert len(busy.take()) == 1 and idle.take() == []
    assert hub.ping_idle() == 1  # the idle one: no frame since the last tick
    await asyncio.wait_for(idle.wait(), 5)  # returns at once: a ping is due
    assert idle.ping_due and not busy.ping_due
    assert hub.ping_idle() == 1  # the busy one, silent since the last tick


def test_replay_buffer_evicts_by_age_and_count_and_reports_gaps() -> None:
    buffer = ReplayBuffer([0, 0], retention_s=10, max_entries=3)
    for seq in range(5):
        slot = seq % 2
        buffer.append(Entry(seq, slot, seq // 2, float(seq), (FIREHOSE,), "score", b"", (0, 0)))
    assert buffer.evict(now=5.0) == 2  # the count bound
    assert buffer.floors == [1, 1]
    with pytest.raises(ReplayGap):
        buffer.since((0, 1), frozenset({FIREHOSE}))
    assert [e.seq for e in buffer.since((1, 1), frozenset({FIREHOSE}))] == [2, 3, 4]
    assert buffer.evict(now=13.5) == 2  # older than 10 s: seq 2 (t=2) and 3 (t=3)
    assert [e.seq for e in buffer.since((2, 2), frozenset({FIREHOSE}))] == [4]


def test_a_stale_or_foreign_last_event_id_gets_a_reset() -> None:
    hub = Hub(1, HubLimits(replay_entries=2))
    for offset in range(5):
        hub.dispatch(0, offset, (FIREHOSE,), "score", b"x")
        hub.evict()
    for resume in (positions.encode([1]), "garbage"):
        replay = parse(hub.open(frozenset({FIREHOSE}), None, resume).replay)
        assert [(eid, event) for eid, event, _ in replay] == [(positions.encode([5]), "reset")]


Record = tuple[int, int, str]  # slot, offset, channel


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Record], int, int, int]:
    """Records over 3 slots and 3 channels; where the client disconnects; how far the
    second worker had got when the client reconnects to it."""
    count = draw(st.integers(1, 60))
    offsets = [0, 0, 0]
    records: list[Record] = []
    for _ in range(count):
        slot = draw(st.integers(0, 2))
        records.append((slot, offsets[slot], draw(st.sampled_from(["a", "b", "c"]))))
        offsets[slot] += 1
    cut = draw(st.integers(0, count))
    reconnect_at = draw(st.integers(0, count))
    seed = draw(st.integers(0, 2**16))
    return records, cut, reconnect_at, seed


def interleaving(records: list[Record], seed: int) -> list[Record]:
    """Another worker reads the same partitions, each in order, but interleaved otherwise."""
    rng = random.Random(seed)
    queues = [[r for r in records if r[0] == slot] for slot in range(3)]
    out: list[Record] = []
    while any(queues):
        slot = rng.choice([s for s in range(3) if queues[s]])
        out.append(queues[slot].pop(0))
    return out


@settings(max_examples=300, deadline=None)
@given(streams())
def test_resume_on_another_worker_delivers_exactly_the_missed_records(
    case: tuple[list[Record], int, int, int],
) -> None:
    records, cut, reconnect_at, seed = case
    wanted = frozenset({"a", "b"})
    first, second = Hub(3, HubLimits()), Hub(3, HubLimits())
    client = first.open(wanted, None, None).client
    for slot, offset, channel in records[:cut]:
        first.dispatch(slot, offset, (channel,), "score", b"%d.%d" % (slot, offset))
    got = parse(client.take())
    first.close(client)
    other_order = interleaving(records, seed)
    for slot, offset, channel in other_order[:reconnect_at]:
        second.dispatch(slot, offset, (channel,), "score", b"%d.%d" % (slot, offset))
    last_id = got[-1][0] if got else positions.encode([0, 0, 0])
    opened = second.open(wanted, None, last_id)
    got += parse(opened.replay)
    for slot, offset, channel in other_order[reconnect_at:]:
        second.dispatch(slot, offset, (channel,), "score", b"%d.%d" % (slot, offset))
    got += parse(opened.client.take())
    expected = sorted(b"%d.%d" % (s, o) for s, o, c in records if c in wanted)
    delivered = [data for _, _, data in got]
    assert sorted(delivered) == expected  # nothing lost
    assert len(set(delivered)) == len(delivered)  # nothing twice
    for (_, _, data), (eid, _, _) in zip(got, got, strict=True):
        slot, offset = map(int, data.split(b"."))
        assert positions.decode(eid, 3)[slot] == offset + 1  # each id covers its own record


def test_changes_pages_with_the_stream_ids() -> None:
    hub = Hub(2, HubLimits())
    client = hub.open(frozenset({COLLECTION}), None, None).client
    for offset in range(5):
        hub.dispatch(offset % 2, offset // 2, score_channels(NFT), "score", b"%d" % offset)
    stream_ids = [eid for eid, _, _ in parse(client.take())]
    page = hub.changes(frozenset({COLLECTION}), None, limit=3)
    assert [eid for eid, _, _ in page.events] == stream_ids[:3] and page.more
    rest = hub.changes(frozenset({COLLECTION}), page.last_id, limit=3)
    assert [eid for eid, _, _ in rest.events] == stream_ids[3:] and not rest.more
    assert hub.changes(frozenset({COLLECTION}), rest.last_id, limit=3).events == []
    assert hub.changes(frozenset({COLLECTION}), "nonsense", limit=3).reset is not None


def test_backlogged_while_a_client_has_half_its_queue_waiting() -> None:
    hub = Hub(1, HubLimits(queue_frames=4))
    client = hub.open(frozenset({FIREHOSE}), None, None).client
    hub.dispatch(0, 0, (FIREHOSE,), "score", b"1")
    assert not hub.backlogged()
    hub.dispatch(0, 1, (FIREHOSE,), "score", b"2")
    assert hub.backlogged()
    client.take()
    assert not hub.backlogged()


def test_a_quiet_user_stream_resumes_although_score_slots_were_evicted() -> None:
    hub = Hub(2, HubLimits(replay_entries=2), first_user_slot=1)
    client = hub.open(frozenset({"user:u1"}), "u1", None).client
    hub.dispatch(1, 0, ("user:u1",), "notification", b"n")
    (last_id, _, _) = parse(client.take())[0]
    hub.close(client)
    for offset in range(5):  # busy score slot: its old records are evicted
        hub.dispatch(0, offset, (FIREHOSE,), "score", b"s")
        hub.evict()
    hub.dispatch(1, 1, ("user:u1",), "notification", b"n2")
    replay = parse(hub.open(frozenset({"user:u1"}), "u1", last_id).replay)
    assert [(event, data) for _, event, data in replay] == [("notification", b"n2")]


def test_a_replay_longer_than_a_queue_is_a_reset() -> None:
    hub = Hub(1, HubLimits(queue_frames=3))
    for offset in range(5):
        hub.dispatch(0, offset, (FIREHOSE,), "score", b"x")
    replay = parse(hub.open(frozenset({FIREHOSE}), None, positions.encode([0])).replay)
    assert [event for _, event, _ in replay] == ["reset"]
    page = hub.changes(frozenset({FIREHOSE}), positions.encode([0]), limit=2)
    assert len(page.events) == 2 and page.more
