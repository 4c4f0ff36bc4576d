"""Start-up benchmark: how long a fresh worker needs to be ready and to route its first event.

    .venv/bin/python bench/startup.py [--repeat 3]

One embedded broker for all runs. Per run: a fresh topic namespace, ONE valid envelope
produced to `<prefix>trustscore-events` before the worker starts, then one worker process
(the same launcher as `make demo` and the tests: `faust -L uvloop -A trustscore_stream.app
worker`) with a fresh data dir. Measured from the moment the process is spawned:

- ready:  `GET /ready` answers 200;
- first:  the sum of `trustscore_records_received_total{...}` reaches 1 (the ingest stage
  processed its first record: decoded, validated, classified it);
- routed: the sum of `trustscore_lane_events_total{...}` on `GET /metrics` reaches 1 (the
  event was decoded, validated, classified, deduplicated and written to its lane);
- taken:  the sum of `trustscore_lane_events_processed_total{...}` reaches 1 (the lane
  processor handed it to its handler and the handler returned).

Both endpoints are polled every 50 ms, so each figure is up to ~50 ms late. The worker is
stopped after each run; the broker at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from trustscore_stream.embedded import EmbeddedBroker, free_port
from trustscore_stream.processes import WorkerProcess, worker_env
from trustscore_stream.settings import load_settings
from trustscore_stream.topics import EVENTS, topic_specs
from trustscore_stream.topics_admin import ensure_topics

POLL_S = 0.05
RECEIVED = "trustscore_records_received_total{"
ROUTED = "trustscore_lane_events_total{"
TAKEN = "trustscore_lane_events_processed_total{"


@dataclass(frozen=True)
class Run:
    ready_s: float
    first_s: float
    routed_s: float
    taken_s: float


def envelope(event_id: str) -> dict[str, object]:
    """A valid `sale` envelope (CONTRACT §2), as in tests/stack.py."""
    return {
        "event_id": event_id,
        "type": "sale",
        "source": "marketplace",
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "schema_version": 1,
        "contract": "0x5af0d9827e0c53e4799bb226655a1de152a425a5",
        "token_id": "1",
        "payload": {
            "seller": "0x8ba1f109551bd432803012645ac136ddd64dba72",
            "buyer": "0x8ba1f109551bd432803012645ac136ddd64dba73",
            "price": "1.25",
            "currency": "ETH",
        },
    }


def _get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def counter_sum(metrics_text: str, prefix: str) -> float:
    """Sum over every label set of one counter in Prometheus text format."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            total += float(line.rpartition(" ")[2])
    return total


async def produce_one(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        # One record in its own batch: nothing for the broker's end-offset bug to trip on.
        await producer.send_and_wait(topic, orjson.dumps(envelope("startup-1")))
    finally:
        await producer.stop()


async def run_once(broker: EmbeddedBroker, tmp: Path, logs: Path, timeout: float) -> Run:
    prefix = f"s{secrets.token_hex(3)}-"
    settings = load_settings({"TRUSTSCORE_BROKER": broker.url, "TRUSTSCORE_TOPIC_PREFIX": prefix})
    await ensure_topics(broker.bootstrap, topic_specs(settings))
    await produce_one(broker.bootstrap, settings.topic(EVENTS))
    worker = WorkerProcess(
        worker_env(
            broker_url=broker.url,
            embedded=True,
            data_dir=tmp / prefix / "data",
            web_port=free_port(),
            extra={"TRUSTSCORE_TOPIC_PREFIX": prefix, "TRUSTSCORE_APP_ID": f"{prefix}app"},
        ),
        log_path=logs / f"{prefix}worker.log",
    )
    started = time.monotonic()
    worker.start()
    ready_s: float | None = None
    first_s: float | None = None
    routed_s: float | None = None
    taken_s: float | None = None
    try:
        deadline = started + timeout
        while ready_s is None or first_s is None or routed_s is None or taken_s is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"worker did not finish within {timeout:g} s "
                    f"(ready={ready_s}, routed={routed_s}, taken={taken_s}); "
                    f"log tail:\n{worker.log_tail()}"
                )
            if not worker.alive():
                raise RuntimeError(f"worker exited early; log tail:\n{worker.log_tail()}")
            if ready_s is None:
                status, _ = await asyncio.to_thread(_get, f"{worker.url}/ready")
                if status == 200:
                    ready_s = time.monotonic() - started
            status, body = await asyncio.to_thread(_get, f"{worker.url}/metrics")
            if status == 200:
                text = body.decode()
                now = time.monotonic() - started
                if first_s is None and counter_sum(text, RECEIVED) >= 1:
                    first_s = now
                if routed_s is None and counter_sum(text, ROUTED) >= 1:
                    routed_s = now
                if taken_s is None and counter_sum(text, TAKEN) >= 1:
                    taken_s = now
            await asyncio.sleep(POLL_S)
    finally:
        await asyncio.to_thread(worker.stop)
    return Run(ready_s, first_s, routed_s, taken_s)


def _row(label: str, ready: float, first: float, routed: float, taken: float) -> str:
    return f"{label:<8} {ready:>9.2f} {first:>9.2f} {routed:>10.2f} {taken:>9.2f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="keep broker and worker logs here"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    print(
        f"date {datetime.now(UTC).isoformat(timespec='seconds')}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}",
        flush=True,
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="trustscore-startup-") as tmp_name:
        tmp = Path(tmp_name)
        logs = args.log_dir or tmp / "logs"
        broker = EmbeddedBroker(log_dir=logs)
        try:
            await broker.astart()
            print(f"embedded broker {broker.url} (pid {broker.pid})", flush=True)
            header = f"{'run':<8} {'ready s':>9} {'first s':>9} {'routed s':>10} {'taken s':>9}"
            print(header, flush=True)
            for n in range(1, args.repeat + 1):
                run = await run_once(broker, tmp, logs, args.timeout)
                runs.append(run)
                print(_row(str(n), run.ready_s, run.first_s, run.routed_s, run.taken_s), flush=True)
        finally:
            await broker.astop()
    print(
        _row(
            "median",
            statistics.median(r.ready_s for r in runs),
            statistics.median(r.first_s for r in runs),
            statistics.median(r.routed_s for r in runs),
            statistics.median(r.taken_s for r in runs),
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
