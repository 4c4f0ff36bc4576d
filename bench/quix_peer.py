"""The Quix Streams peer of the naive Faust agent (bench/baselines.py BENCH_MODE=naive).

Per input record (one envelope): parse the JSON, add 1 to a per-key counter (key =
contract:token_id) in the partition's RocksDB state (changelogged by Quix, once per changed
key and checkpoint), and produce one output record keyed by that key carrying the input
bytes. Run by bench/scoring.py as a subprocess, with the interpreter of an environment that
has quixstreams (it pins pydantic<2.14, which conflicts with the project's bench extra):

    BENCH_BOOTSTRAP=host:port BENCH_INPUT=topic BENCH_OUTPUT=topic BENCH_TOTAL=n \
    BENCH_OUT=result.json BENCH_GROUP=group BENCH_STATE_DIR=dir python bench/quix_peer.py

The input and output topics must exist (created with retention.ms and retention.bytes: Quix
reads both from the broker). When BENCH_TOTAL events were seen it writes
{"first","last","count","cpu_first","cpu_last"} to BENCH_OUT, as bench/baselines.py
does, and stops.
"""

from __future__ import annotations

import os
import time
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, State
from quixstreams.models.serializers import SerializationContext, Serializer

BOOTSTRAP = os.environ["BENCH_BOOTSTRAP"]
INPUT = os.environ["BENCH_INPUT"]
OUTPUT = os.environ["BENCH_OUTPUT"]
TOTAL = int(os.environ["BENCH_TOTAL"])
OUT = Path(os.environ["BENCH_OUT"])
GROUP = os.environ["BENCH_GROUP"]
STATE_DIR = os.environ["BENCH_STATE_DIR"]

state: dict[str, Any] = {"first": None, "count": 0}


class _PayloadSerializer(Serializer):
    """Writes the second item of a (key, payload) pair: the input bytes, unchanged."""

    def __call__(self, value: tuple[bytes, bytes], ctx: SerializationContext) -> bytes:
        return value[1]


def main() -> None:
    app = Application(
        broker_address=BOOTSTRAP,
        consumer_group=GROUP,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=STATE_DIR,
        loglevel="WARNING",
        # Like Faust's broker_session_timeout=4 / heartbeat 1: the broker holds a JoinGroup
        # for half the session timeout.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )
    source = app.topic(INPUT, value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(OUTPUT, key_serializer="bytes", value_serializer=_PayloadSerializer())

    def count(value: bytes, counters: State[str, int]) -> tuple[bytes, bytes]:
        if state["first"] is None:
            state["first"] = time.time()
            state["cpu_first"] = time.process_time()  # this process's CPU seconds, all threads
        envelope = orjson.loads(value)
        key = str(envelope.get("contract")) + ":" + str(envelope.get("token_id"))
        counters.set(key, counters.get(key, 0) + 1)
        state["count"] += 1
        if state["count"] == TOTAL:
            done = {"last": time.time(), "cpu_last": time.process_time()}
            OUT.write_text(orjson.dumps({**state, **done}).decode())
            app.stop()
        return key.encode(), value

    sdf = app.dataframe(source)
    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(sink, key=itemgetter(0))
    app.run()


if __name__ == "__main__":
    main()
