"""Reference Faust apps for the benchmarks, run as `faust -A bench.baselines worker`.

BENCH_MODE=noop: an agent that does nothing per record (Faust's own ceiling).
BENCH_MODE=naive: per event one table update and one `await topic.send()` (the design the
performance notes warn about). Input records may be envelopes or batch records.
When BENCH_TOTAL events were seen, the agent writes {"first","last","count"} to BENCH_OUT
(and "cpu_first", "cpu_last": the process's CPU seconds at the first and the last event).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import faust
import orjson

from trustscore_stream.worker_logging import undo_spinner_log_level

MODE = os.environ.get("BENCH_MODE", "noop")
TOTAL = int(os.environ.get("BENCH_TOTAL", "0"))
OUT = Path(os.environ.get("BENCH_OUT", "bench-result.json"))
PREFIX = os.environ.get("TRUSTSCORE_TOPIC_PREFIX", "")
BATCHED = os.environ.get("BENCH_SHAPE", "single") == "batch"
embedded = os.environ.get("TRUSTSCORE_EMBEDDED_BROKER") == "1"

app = faust.App(
    os.environ.get("TRUSTSCORE_APP_ID", "bench"),
    broker=os.environ["TRUSTSCORE_BROKER"],
    store="rocksdb://",
    datadir=os.environ.get("TRUSTSCORE_DATA_DIR", "bench-data"),
    topic_partitions=8,
    broker_session_timeout=4.0,
    broker_heartbeat_interval=1.0,
    web_port=int(os.environ.get("TRUSTSCORE_WEB_PORT", "6066")),
    web_bind="127.0.0.1",
    consumer_auto_offset_reset="earliest",
    key_serializer="raw",
    value_serializer="raw",
    **({"producer_max_batch_size": 1} if embedded else {}),
)
source = app.topic(f"{PREFIX}trustscore-events", partitions=8, internal=True, value_type=bytes)
sink = app.topic(f"{PREFIX}bench-out", partitions=8, internal=True, value_type=bytes)
counts = app.Table("bench-counts", default=int, partitions=8)


# The same log level fix as the app's, so both pay the same logging cost.
@app.task
async def _undo_spinner() -> None:
    await undo_spinner_log_level(logging.WARNING)


state: dict[str, Any] = {"first": None, "count": 0}


def seen(n: int) -> None:
    if state["first"] is None:
        state["first"] = time.time()
        state["cpu_first"] = time.process_time()  # this process's CPU seconds, all threads
    state["count"] += n
    if state["count"] >= TOTAL:
        done = {"last": time.time(), "cpu_last": time.process_time()}
        OUT.write_text(orjson.dumps({**state, **done}).decode())


if MODE == "noop":

    @app.agent(source)
    async def noop(stream: Any) -> None:
        async for _value in stream:
            seen(1)

else:

    @app.agent(source)
    async def naive(stream: Any) -> None:
        async for value in stream:
            parsed = orjson.loads(value)
            envelopes = parsed if isinstance(parsed, list) else [parsed]
            for envelope in envelopes:
                key = str(envelope.get("contract")) + ":" + str(envelope.get("token_id"))
                counts[key] += 1
                await sink.send(key=key.encode(), value=value if not BATCHED else b"1")
            seen(len(envelopes))
