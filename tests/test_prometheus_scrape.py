"""A real Prometheus server scrapes two real workers: what it sums over both through its
query API must equal what was sent, and the latency histograms must be usable in PromQL."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack, sale
from trustscore_stream.embedded import free_port
from trustscore_stream.processes import WorkerProcess, _pdeathsig_preexec

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
EVENTS = 48


class Prometheus:
    """One Prometheus server on a free local port, its data in a temporary directory."""

    def __init__(self, root: Path, targets: list[str]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = root / "prometheus.yml"
        self.log = root / "prometheus.log"
        quoted = ", ".join(f"'{t}'" for t in targets)
        self.config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: trustscore\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            f"      - targets: [{quoted}]\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.root / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (empty while there is no data yet)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        """The single value of a query, None while it has none."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus_binary() -> Iterator[Path]:
    if not PROMETHEUS.exists():
        pytest.fail(
            f"{PROMETHEUS} is missing: this test needs the Prometheus server; "
            "`make test` installs it (Debian package `prometheus`)."
        )
    yield PROMETHEUS


async def poll(check: Any, what: str, server: Prometheus, timeout: float = 90.0) -> Any:
    """`check()` (run in a thread) until it returns something other than None."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.to_thread(check)
        except (urllib.error.URLError, OSError):
            last = None  # not listening yet
        if last is not None:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; prometheus log: {server.log_tail()}")


def own_total(worker: WorkerProcess) -> float:
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("trustscore_events_received_total{")
    )


async def test_prometheus_sums_the_ingest_counter_over_two_workers(
    prometheus_binary: Path, stack: Stack, tmp_path: Path
) -> None:
    workers = [stack.start_worker("w1"), stack.start_worker("w2")]
    await asyncio.gather(*(w.wait_ready(timeout=90) for w in workers))
    server = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{w.web_port}" for w in workers])
    server.start()
    try:
        up = 'count(up{job="trustscore"} == 1)'
        await poll(lambda: server.scalar(up) == 2 or None, "both workers scraped", server)

        # The input topic's partitions split between the two workers' ingest consumers, as
        # their lag gauges say (one series per assigned partition).
        topic = stack.topic("trustscore-events")
        split = f'count by (instance) (trustscore_consumer_lag_records{{topic="{topic}"}})'

        def settled() -> bool | None:
            counts = [float(r["value"][1]) for r in server.query(split)]
            return (len(counts) == 2 and sum(counts) == stack.partitions) or None

        await poll(settled, "the input partitions split over both workers", server)

        # One record per partition in turn, so both workers' ingest consumers get some.
        producer = await stack.producer()
        events = [sale(f"p{i}", token=i + 1) for i in range(EVENTS)]
        for i, event in enumerate(events[: EVENTS // 2]):
            await producer.send_and_wait(
                topic,
                json.dumps(event).encode(),
                partition=i % stack.partitions,
            )
        await stack.produce([events[EVENTS // 2 :]])  # the rest as one batch record

        summed = "sum(trustscore_events_received_total)"
        await poll(lambda: server.scalar(summed) == EVENTS or None, f"{summed} == {EVENTS}", server)
        assert server.scalar(summed) == EVENTS
        # The same figure as the workers' own counters, and it came from both of them.
        assert sum(own_total(w) for w in workers) == EVENTS
        by_instance = server.query("sum by (instance) (trustscore_events_received_total)")
        assert len(by_instance) == 2, by_instance

        # The end-to-end latency histogram, as the alert rules read it.
        p95 = "histogram_quantile(0.95, sum by (le) (trustscore_event_to_published_seconds_bucket))"
        value = await poll(
            lambda: ((v := server.scalar(p95)) is not None and not math.isnan(v) and v) or None,
            "an end-to-end p95",
            server,
        )
        assert 0 < value < 60
    finally:
        server.stop()
    assert server.proc is not None and server.proc.poll() is not None
