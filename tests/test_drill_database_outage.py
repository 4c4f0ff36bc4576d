"""Reliability drill: PostgreSQL goes away for 20 s while events stream in.

The worker reaches its own schema on the machine's PostgreSQL only through a TCP proxy in
this process (tests/tcp_proxy.py); the server itself is never touched. The proxy is down
when the worker starts (the documented start-up wait: /ready 503 with "database":
"waiting"), then up; two users subscribe (in-app) to collections and NFTs; mints, sales and
critical fraud findings stream in once a second; mid-stream the proxy refuses new
connections and resets every open one for 20 s, then comes back. Checked afterwards:
- every version published on the history topic is stored exactly once with its score, and
  every entity's versions are 1..n (none lost, none twice);
- every expected notification (each finding, for each subscriber of its entity) is in the
  notifications table exactly once, every notification there reached the live stream, and
  the live stream carries no notification the table lacks;
- while the database was away the worker kept scoring and answering reads, and /ready stayed
  200 (only the start-up wait for the database is a readiness condition: operations.md
  "Database"); the history writer and the notifier retried, logging warnings, no errors.
`TRUSTSCORE_RETRY_MAX_DELAY=4` caps the retry backoff (default 60 s), so recovery takes
seconds after the proxy is back.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.db.conftest import pg_admin_url, pg_schemas  # noqa: F401 (fixtures)
from tests.db.pg import PgSchemas
from tests.drill_checks import (
    history_by_entity,
    processed_events,
    published_history,
    stored_as_published,
)
from tests.drill_checks import mints as mint_envelopes
from tests.stack import Stack, scrape
from tests.tcp_proxy import TcpProxy
from trustscore_stream.processes import WorkerProcess
from trustscore_stream.web.auth import issue_token

pytestmark = [pytest.mark.integration, pytest.mark.drill, pytest.mark.postgres]

SECRET = "database-outage-drill-secret-at-least-32-bytes"
CONTRACTS = [f"0x{i:02x}" + "9b" * 19 for i in range(6)]
HOLDER = "0x" + "a3" * 20
BUYERS = ["0x" + f"{0xD0 + i:02x}" * 20 for i in range(4)]
TOKENS = 3
WATCHED_TOKENS = 2  # u1 subscribes to these NFTs of every collection
ROUNDS = 32
OUTAGE_AFTER_ROUND = 8
OUTAGE_S = 20.0


def collection(c: int) -> str:
    return f"collection:eth:{CONTRACTS[c]}"


def nft(c: int, t: int) -> str:
    return f"nft:eth:{CONTRACTS[c]}:{t}"


def subscriptions() -> dict[str, list[str]]:
    collections = [collection(c) for c in range(len(CONTRACTS))]
    nfts = [nft(c, t) for c in range(len(CONTRACTS)) for t in range(WATCHED_TOKENS)]
    return {"u1": collections + nfts, "u2": collections}


def findings() -> list[str]:
    """The entities that get a critical finding, one each, in this order."""
    return [nft(c, t) for t in range(WATCHED_TOKENS) for c in range(len(CONTRACTS))] + [
        collection(c) for c in range(len(CONTRACTS))
    ]


def finding_rounds() -> dict[int, str]:
    """Round -> the entity found fraudulent in it: spread before, during and after the
    outage (rounds 1..30)."""
    entities = findings()
    return {1 + (i * (ROUNDS - 3)) // (len(entities) - 1): e for i, e in enumerate(entities)}


def mints() -> list[dict[str, Any]]:
    return mint_envelopes(CONTRACTS, TOKENS, HOLDER, "2026-11-25T10:00:00Z")


def round_of(r: int) -> list[dict[str, Any]]:
    """A sale in every collection (its NFTs in turn), and maybe a finding."""
    t = r % TOKENS
    out: list[dict[str, Any]] = [
        {
            "event_id": f"s{c}-{r}",
            "type": "sale",
            "source": "marketplace",
            "occurred_at": f"2026-11-25T{11 + r // 60:02d}:{r % 60:02d}:00Z",
            "schema_version": 1,
            "contract": contract,
            "token_id": str(t),
            "payload": {
                "seller": HOLDER if r < TOKENS else BUYERS[(r - TOKENS) % len(BUYERS)],
                "buyer": BUYERS[r % len(BUYERS)],
                "price": f"{2 + r % 5}",
                "currency": "ETH",
            },
        }
        for c, contract in enumerate(CONTRACTS)
    ]
    entity = finding_rounds().get(r)
    if entity is not None:
        out.append(
            {
                "event_id": f"f-{r}",
                "type": "fraud_finding",
                "source": "fraud",
                "occurred_at": f"2026-11-25T{11 + r // 60:02d}:{r % 60:02d}:30Z",
                "schema_version": 1,
                "payload": {
                    "entity": entity,
                    "finding": "stolen" if entity.startswith("nft:") else "rug_pull",
                    "severity": "critical",
                    "confidence": 0.9,
                },
            }
        )
    return out


def expected_notifications() -> Counter[tuple[str, str, str, str]]:
    """(user, entity, kind, cause event) of each finding for each subscriber of its entity."""
    subs = subscriptions()
    return Counter(
        (user, entity, "fraud_finding", f"f-{r}")
        for r, entity in finding_rounds().items()
        for user, watched in subs.items()
        if entity in watched
    )


def readiness(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{worker.url}/ready", timeout=2) as answer:
            return int(answer.status), orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), orjson.loads(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, {}


async def until(check: Any, what: str, timeout: float = 60.0, must: bool = True) -> Any:
    """`check()`'s first true answer; at the deadline its last (with `must`: a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        found = await found if asyncio.iscoroutine(found) else found
        if found or (not must and time.monotonic() >= deadline):
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


def notification_key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (row["user_id"], row["entity"], row["kind"], row["cause_event_id"])


def notification_rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, user_id, entity, kind, cause_event_id, pushed_at FROM notifications"
                )
            ).all()
    finally:
        engine.dispose()
    return [dict(row._mapping) for row in rows]


def errors_logged(worker: WorkerProcess) -> list[str]:
    """The worker's log lines at ERROR or above (the log is JSON lines)."""
    lines = worker.log_path.read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if '"level":"ERROR"' in line or '"CRITICAL"' in line]


async def subscribe(worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for user, entities in subscriptions().items():
            headers = {"Authorization": f"Bearer {issue_token(user, SECRET)}"}
            for entity in entities:
                body = {"entity": entity, "channels": ["in_app"]}
                async with http.post(
                    f"{worker.url}/api/v1/subscriptions", json=body, headers=headers
                ) as answer:
                    assert answer.status == 201, await answer.text()


async def test_history_and_notifications_survive_a_database_outage(
    stack: Stack,
    pg_schemas: PgSchemas,  # noqa: F811
) -> None:
    started = time.monotonic()
    schema = pg_schemas.create()
    direct = pg_schemas.url(schema)
    target = make_url(direct)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        # Start-up without a database: the documented wait, then ready once it is there.
        worker = stack.start_worker(
            "w1",
            extra={
                "TRUSTSCORE_DATABASE_URL": proxied,
                "TRUSTSCORE_JWT_SECRET": SECRET,
                "TRUSTSCORE_RETRY_MAX_DELAY": "4",
            },
        )

        async def database_waiting() -> tuple[int, dict[str, Any]] | None:
            status, body = await asyncio.to_thread(readiness, worker)
            return (status, body) if body.get("database") == "waiting" else None

        waiting = await until(database_waiting, "/ready to report the database waiting")
        assert waiting[0] == 503, waiting
        await proxy.restore()
        await worker.wait_ready(timeout=60)

        await subscribe(worker)
        await asyncio.sleep(3)  # the subscriptions reach the notifier's table
        await stack.produce([mints()])
        outage_start = asyncio.Event()

        async def stream_in() -> None:
            for r in range(ROUNDS):
                await stack.produce([round_of(r)])
                if r == OUTAGE_AFTER_ROUND:
                    outage_start.set()
                await asyncio.sleep(1.0)

        producing = asyncio.create_task(stream_in())
        await outage_start.wait()
        versions_before = scrape(worker).get("trustscore_score_versions_total", 0.0)
        reset = await proxy.cut()
        assert reset > 0  # the worker's pooled connections: broken under it
        cut_at = time.monotonic()
        ready_during: Counter[tuple[int, str]] = Counter()
        reads_during: Counter[int] = Counter()
        async with aiohttp.ClientSession() as http:
            while time.monotonic() - cut_at < OUTAGE_S:
                status, body = await asyncio.to_thread(readiness, worker)
                ready_during[(status, str(body.get("database")))] += 1
                async with http.get(f"{worker.url}/api/v1/scores/{collection(0)}") as answer:
                    reads_during[answer.status] += 1
                await asyncio.sleep(0.5)
        during = scrape(worker)
        await proxy.restore()
        restored_at = time.monotonic()
        await producing

        events = len(mints()) + sum(len(round_of(r)) for r in range(ROUNDS))
        await until(lambda: processed_events(worker) >= events, f"all {events} events folded")
        assert worker.alive()
        # Scoring went on without the database; the writers retried.
        assert during.get("trustscore_score_versions_total", 0.0) > versions_before
        assert during.get("trustscore_db_write_failures_total", 0.0) > 0
        assert set(reads_during) == {200}, reads_during
        assert set(ready_during) == {(200, "ready")}, ready_during
        assert not errors_logged(worker), errors_logged(worker)  # expected: warnings only

        problems: list[str] = []
        published: dict[str, list[tuple[int, float]]] = {}

        async def history_complete() -> bool:
            nonlocal problems, published
            published = await published_history(stack)
            stored = await asyncio.to_thread(history_by_entity, direct)
            problems = stored_as_published(published, stored)
            return not problems

        await until(history_complete, "every published version stored", 60, must=False)
        assert not problems, problems
        history_s = time.monotonic() - restored_at

        expected = expected_notifications()
        rows: list[dict[str, Any]] = []

        async def notified() -> bool:
            nonlocal rows
            rows = await asyncio.to_thread(notification_rows, direct)
            keys = Counter(
                (r["user_id"], r["entity"], r["kind"], r["cause_event_id"]) for r in rows
            )
            return all(keys[k] >= 1 for k in expected) and all(r["pushed_at"] for r in rows)

        await until(notified, "every expected notification, pushed", timeout=60)
        keys = Counter(map(notification_key, rows))
        assert {k: keys[k] for k in expected} == dict(expected)
        findings_twice = {k: n for k, n in keys.items() if k[2] == "fraud_finding" and n > 1}
        assert not findings_twice, findings_twice
        live = await stack.consume("trustscore-notifications", until=len(rows), timeout=10)
        live_ids = [orjson.loads(r.value)["id"] for r in live if r.value is not None]
        assert set(live_ids) == {r["id"] for r in rows}
        print(
            f"\ndatabase-outage drill: {events} events in {ROUNDS} rounds, proxy down "
            f"{OUTAGE_S:.0f} s after round {OUTAGE_AFTER_ROUND}, resetting {reset} open "
            f"connections ({proxy.connections} through it in all); "
            f"{sum(map(len, published.values()))} versions of {len(published)} entities "
            f"published and stored once each (history complete "
            f"{history_s:.1f} s after the restore); {len(rows)} notifications "
            f"({sum(expected.values())} expected findings, each once; "
            f"{len(live_ids) - len(set(live_ids))} repeats on the live stream); during the "
            f"outage: {during.get('trustscore_db_write_failures_total', 0):.0f} failed database "
            f"calls, /ready {dict(ready_during)}, reads {dict(reads_during)}; "
            f"{time.monotonic() - started:.0f} s"
        )
    finally:
        for process in stack.workers:  # before the schema goes: no session left in it
            process.stop()
        await proxy.cut()
        pg_schemas.drop(schema)
