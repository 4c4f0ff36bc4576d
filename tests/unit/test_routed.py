from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from tests.stack import sale
from trustscore_stream.events.classification import classify
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.routed import decode_batch, decode_batch_raw, encode_batches, routed
from trustscore_stream.partitioning import partition_for


def test_batches_respect_item_and_byte_limits() -> None:
    now = datetime.now(UTC)
    items = [
        routed(e, classify(e, now), time.time())
        for e in decode_record(orjson.dumps([sale(str(i)) for i in range(1000)])).envelopes
    ] * 3
    records = encode_batches(items, max_items=1000, max_bytes=200_000)
    assert all(len(r) <= 200_000 for r in records)
    decoded = [i for r in records for i in decode_batch(r)]
    assert [i.event_id for i in decoded] == [i.event_id for i in items]
    # The pass-through decoding keeps the envelope bytes as they were.
    raw = decode_batch_raw(records[0])
    assert orjson.loads(bytes(raw[0].envelope))["event_id"] == "0"


def test_partition_matches_kafka_default_partitioner() -> None:
    # Values of the Java client's murmur2 partitioner (as used by Kafka and Faust).
    from aiokafka.partitioner import DefaultPartitioner

    for key in ("collection:eth:0xabc", "wallet:eth:0x1", "k0"):
        expected = DefaultPartitioner()(key.encode(), list(range(8)), list(range(8)))
        assert partition_for(key, 8) == expected
