"""Reliability drill: a worker loses its local table state (every RocksDB directory under
its data dir) while stopped, twice in a row: once after SIGTERM, once after kill -9.

Each time it is restarted on the same data dir (the same SQLite history file) and must
restore everything from the changelogs: every entity answers over REST exactly as before
(score, level, confidence, factors with their evidence, version, updated_at). Events sent
after each restart must continue every entity's versions: the stored history (REST) holds
exactly 1..n per entity, the rows from before the restarts unchanged, and the history topic
names no (entity, version) twice.

The events are dated after the run (2031), so reads do not decay between two snapshots
(`scoring/common.py`: reading before an event decays nothing): a difference after the
restart is the restore's, not the clock's. The worker is stopped only once it is idle (all
input folded, published and checkpointed): a stop inside the checkpoint interval is the
separate, known problem of re-issued versions (docs/reliability.md, finding 1).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.drill_checks import (
    conflicting_versions,
    processed_events,
    published_history,
    repeated_versions,
)
from tests.stack import Stack, scrape
from trustscore_stream.processes import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.drill]

CONTRACTS = [f"0x{i:02x}" + "7d" * 19 for i in range(4)]
CREATORS = ["0x" + f"{0xC0 + i:02x}" * 20 for i in range(len(CONTRACTS))]
HOLDER = "0x" + "a2" * 20
BUYERS = ["0x" + f"{0xB0 + i:02x}" * 20 for i in range(6)]
TOKENS = 3
CHECKPOINT_S = 5.0  # the default TRUSTSCORE_CHECKPOINT_INTERVAL


def collection(c: int) -> str:
    return f"collection:eth:{CONTRACTS[c]}"


def nft(c: int, t: int) -> str:
    return f"nft:eth:{CONTRACTS[c]}:{t}"


def entities() -> list[str]:
    ids = [collection(c) for c in range(len(CONTRACTS))]
    ids += [nft(c, t) for c in range(len(CONTRACTS)) for t in range(TOKENS)]
    return ids + [f"wallet:eth:{w}" for w in CREATORS]


def envelope(
    event_id: str, kind: str, source: str, at: str, payload: dict[str, Any], **where: str
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "source": source,
        "occurred_at": at,
        "schema_version": 1,
        **where,
        "payload": payload,
    }


def first_wave() -> list[dict[str, Any]]:
    """Every kind of state: verified collections with creators, mints, sales, a listing, a
    metadata change, a transfer, market data, social signals and two fraud findings."""
    out: list[dict[str, Any]] = []
    for c, contract in enumerate(CONTRACTS):
        at = f"2031-01-0{c + 1}T"
        out.append(
            envelope(
                f"v{c}",
                "collection_verified",
                "market",
                at + "09:00:00Z",
                {"verified": c != 3, "creator": CREATORS[c], "audit_score": 60 + 10 * c},
                contract=contract,
            )
        )
        for t in range(TOKENS):
            where = {"contract": contract, "token_id": str(t)}
            out.append(
                envelope(
                    f"m{c}-{t}",
                    "mint",
                    "chain",
                    at + f"10:0{t}:00Z",
                    {"to": HOLDER, "creator": CREATORS[c], "price": "0.5", "currency": "ETH"},
                    **where,
                )
            )
            out.append(
                envelope(
                    f"s{c}-{t}",
                    "sale",
                    "marketplace",
                    at + f"11:0{t}:00Z",
                    {
                        "seller": HOLDER,
                        "buyer": BUYERS[t],
                        "price": f"{1 + c + t}.25",
                        "currency": "ETH",
                        "marketplace": "opensea",
                    },
                    **where,
                )
            )
        token0 = {"contract": contract, "token_id": "0"}
        token1 = {"contract": contract, "token_id": "1"}
        out.append(
            envelope(
                f"l{c}",
                "listing",
                "marketplace",
                at + "12:00:00Z",
                {"seller": BUYERS[0], "price": "9", "currency": "ETH"},
                **token0,
            )
        )
        out.append(
            envelope(
                f"md{c}",
                "metadata_update",
                "chain",
                at + "12:30:00Z",
                {"fields": ["image", "name"], "frozen": c % 2 == 0},
                **token1,
            )
        )
        out.append(
            envelope(
                f"mk{c}",
                "market_data",
                "market",
                at + "13:00:00Z",
                {"floor_price": f"{c + 1}.5", "currency": "ETH", "volume_24h": "40", "holders": 3},
                contract=contract,
            )
        )
        out.append(
            envelope(
                f"so{c}",
                "social_signal",
                "social",
                at + "13:30:00Z",
                {"entity": collection(c), "sentiment": 0.6 - 0.4 * c, "mentions": 10 + c},
            )
        )
    out.append(
        envelope(
            "t2-2",
            "transfer",
            "chain",
            "2031-01-03T14:00:00Z",
            {"from": BUYERS[2], "to": BUYERS[4]},
            contract=CONTRACTS[2],
            token_id="2",
        )
    )
    for event_id, entity, finding in (
        ("f0", collection(0), "wash_trading"),
        ("f1", nft(1, 2), "stolen"),
    ):
        out.append(
            envelope(
                event_id,
                "fraud_finding",
                "fraud",
                "2031-01-05T09:00:00Z",
                {"entity": entity, "finding": finding, "severity": "high", "confidence": 0.8},
            )
        )
    return out


def later_wave(n: int) -> list[dict[str, Any]]:
    """One resale per collection (token `n % TOKENS`) and a social signal on one NFT."""
    out = []
    t = n % TOKENS
    for c, contract in enumerate(CONTRACTS):
        seller = BUYERS[4] if (c, t) == (2, 2) else BUYERS[t]
        out.append(
            envelope(
                f"w{n}-s{c}",
                "sale",
                "marketplace",
                f"2031-02-0{n}T10:0{c}:00Z",
                {"seller": seller, "buyer": BUYERS[5], "price": f"{3 + n}.5", "currency": "ETH"},
                contract=contract,
                token_id=str(t),
            )
        )
    out.append(
        envelope(
            f"w{n}-so",
            "social_signal",
            "social",
            f"2031-02-0{n}T11:00:00Z",
            {"entity": nft(n % len(CONTRACTS), 0), "sentiment": -0.5, "mentions": 40},
        )
    )
    return out


async def until(check: Callable[[], Any], what: str, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        found = await found if asyncio.iscoroutine(found) else found
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


async def idle(worker: WorkerProcess, events: int) -> None:
    """All `events` folded, published and checkpointed: the checkpoint and version counters
    stood still for longer than a checkpoint interval (a folded batch is checkpointed
    within one interval, so nothing is left uncheckpointed; link records between
    partitions included)."""
    await until(lambda: processed_events(worker) >= events, f"{events} events folded")
    quiet_s = CHECKPOINT_S + 2.0
    marks: tuple[float, float] | None = None
    since = time.monotonic()
    while time.monotonic() - since < quiet_s:
        metrics = scrape(worker)
        now = (
            metrics.get("trustscore_checkpoints_total", 0.0),
            metrics.get("trustscore_score_versions_total", 0.0),
        )
        if now != marks:
            marks, since = now, time.monotonic()
        await asyncio.sleep(0.5)


async def answers(worker: WorkerProcess, ids: list[str]) -> dict[str, Any]:
    """Every entity's full REST answer (None for 404), retried while the worker answers
    503 (just after it became ready)."""

    async def read_all() -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            for entity in ids:
                async with http.get(f"{worker.url}/api/v1/scores/{entity}") as answer:
                    if answer.status == 503:
                        return None
                    assert answer.status in (200, 404), (entity, answer.status)
                    out[entity] = await answer.json() if answer.status == 200 else None
        return out

    found: dict[str, Any] = await until(read_all, "every entity answered")
    return found


HistoryRow = tuple[int, float, str | None, str]  # version, score, cause event, at


async def histories(worker: WorkerProcess, ids: list[str]) -> dict[str, list[HistoryRow]]:
    """Every entity's stored history over REST, oldest first."""
    out: dict[str, list[HistoryRow]] = {}
    async with aiohttp.ClientSession() as http:
        for entity in ids:
            url = f"{worker.url}/api/v1/scores/{entity}/history?limit=1000"
            async with http.get(url) as answer:
                assert answer.status == 200, (entity, answer.status, await answer.text())
                rows = await answer.json()
            out[entity] = [
                (r["version"], r["score"], r["cause_event_id"], r["at"]) for r in reversed(rows)
            ]
    return out


def history_problems(
    history: dict[str, list[HistoryRow]],
    served: dict[str, Any],
    before: dict[str, list[HistoryRow]],
) -> list[str]:
    """Versions 1..n per entity, the rows stored before (`before`) unchanged, and the newest
    row the version and score served (an NFT scored on read after its collection changed
    serves the next version, stored with its own next change: drill_checks.py)."""
    problems = []
    for entity, body in served.items():
        rows = history.get(entity, [])
        versions = [r[0] for r in rows]
        if body is None:
            if rows:
                problems.append(f"{entity}: not found, but has history {versions}")
            continue
        if not rows or versions != list(range(1, len(rows) + 1)):
            problems.append(f"{entity}: versions {versions} are not 1..n")
            continue
        old = before.get(entity, [])
        if rows[: len(old)] != old:
            problems.append(f"{entity}: rows stored before the restart changed: {old} -> {rows}")
        newest, score = rows[-1][0], rows[-1][1]
        pending = entity.startswith("nft:") and body["version"] == newest + 1
        if (newest, score) != (body["version"], body["score"]) and not pending:
            problems.append(
                f"{entity}: newest stored v{newest} score {score}, served "
                f"v{body['version']} score {body['score']}"
            )
    return problems


async def stored_history(
    worker: WorkerProcess, served: dict[str, Any], before: dict[str, list[HistoryRow]]
) -> dict[str, list[HistoryRow]]:
    """The history once it holds what `served` says (the writer runs behind scoring), and
    is sound against `before`; fails with the problems when it does not get there."""
    ids = [e for e, body in served.items() if body is not None]
    history: dict[str, list[HistoryRow]] = {}
    problems: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        history = await histories(worker, ids)
        problems = history_problems(history, served, before)
        if not problems:
            return history
        await asyncio.sleep(0.5)
    raise AssertionError(f"stored history: {problems}")


def rocksdb_dirs(data_dir: Path) -> list[Path]:
    """Every RocksDB database under the worker's state directory (one per table
    partition, standbys included): a directory holding RocksDB's CURRENT file."""
    return sorted({p.parent for p in (data_dir / "worker").rglob("CURRENT")})


async def stop_lose_state_restart(
    stack: Stack, worker: WorkerProcess, name: str, how: str
) -> tuple[WorkerProcess, int, float]:
    """Stop `worker` (`how`: SIGTERM or SIGKILL), delete its RocksDB state, start a new worker
    on the same data dir; returns it, the directories deleted and its seconds to /ready."""
    data_dir = Path(worker.env["TRUSTSCORE_DATA_DIR"])
    if how == "SIGTERM":
        worker.stop()
    else:
        worker.kill()
    assert worker.proc is not None and worker.proc.poll() is not None
    lost = rocksdb_dirs(data_dir)
    assert lost, f"no RocksDB directories under {data_dir / 'worker'}"
    for directory in lost:
        shutil.rmtree(directory)
    assert not rocksdb_dirs(data_dir)
    restarted = stack.start_worker(name, data_dir=data_dir)
    ready_s = await restarted.wait_ready(timeout=90)
    return restarted, len(lost), ready_s


async def test_scores_and_versions_survive_losing_local_state_twice(stack: Stack) -> None:
    started = time.monotonic()
    ids = entities()
    worker = stack.start_worker("w1", data_dir=stack.root / "state")
    await worker.wait_ready()
    waves = [first_wave(), later_wave(1), later_wave(2)]
    history: dict[str, list[HistoryRow]] = {}
    report = []
    for n, how in enumerate(("SIGTERM", "SIGKILL")):
        await stack.produce([waves[n]])
        await idle(worker, len(waves[n]))  # each worker counts what it folded itself
        before = await answers(worker, ids)
        assert await answers(worker, ids) == before  # stable: nothing left to change
        unknown = [e for e, body in before.items() if body is None]
        assert all(e.startswith("wallet:") for e in unknown), unknown
        history = await stored_history(worker, before, history)
        worker, lost, ready_s = await stop_lose_state_restart(stack, worker, f"w{n + 2}", how)
        after = await answers(worker, ids)
        changed = {e: (before[e], after[e]) for e in ids if after[e] != before[e]}
        assert not changed, f"after {how} and losing local state: {changed}"
        report.append(
            f"{how}: {len(ids) - len(unknown)} entities identical, {lost} RocksDB dirs "
            f"deleted, ready in {ready_s:.1f} s"
        )

    # Versions go on from where they were: nothing skipped, nothing issued twice.
    await stack.produce([waves[2]])
    await idle(worker, len(waves[2]))
    final = await answers(worker, ids)
    await stored_history(worker, final, history)
    # The last wave made new versions (collection 0 is capped by its fraud finding).
    grew = [e for e in ids if final[e] and before[e] and final[e]["version"] > before[e]["version"]]
    assert {collection(c) for c in range(1, len(CONTRACTS))} <= set(grew), grew
    published = await published_history(stack)
    assert not repeated_versions(published), repeated_versions(published)
    print(
        f"\nstate-loss drill: {sum(map(len, waves))} events; {'; '.join(report)}; "
        f"{len(grew)} entities re-versioned after; {sum(map(len, published.values()))} versions "
        f"published, none twice; history contiguous; {time.monotonic() - started:.0f} s"
    )


LONG_CHECKPOINT_S = 60.0


async def published(worker: WorkerProcess, events: int) -> None:
    """All `events` folded and their versions published (the versions counter stood still
    for several conflation windows), with no checkpoint since the first of them."""
    await until(lambda: processed_events(worker) >= events, f"{events} events folded")
    mark, since = -1.0, time.monotonic()
    while time.monotonic() - since < 2.0:
        versions = scrape(worker).get("trustscore_score_versions_total", 0.0)
        if versions != mark:
            mark, since = versions, time.monotonic()
        await asyncio.sleep(0.2)


def scored(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """What must survive: everything but `updated_at` (the wall-clock time of publishing)."""
    return None if body is None else {k: v for k, v in body.items() if k != "updated_at"}


def same_or_later(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """The same answer, at the same version or a later one (re-read input may publish an
    intermediate version; the number never goes back)."""
    if before is None or after is None:
        return before is after
    unversioned = [
        {k: v for k, v in body.items() if k not in ("version", "updated_at")}
        for body in (before, after)
    ]
    return unversioned[0] == unversioned[1] and after["version"] >= before["version"]


def brief(body: dict[str, Any] | None) -> str:
    return "not found" if body is None else f"v{body['version']} score {body['score']}"


async def test_a_graceful_stop_between_checkpoints_loses_no_version(stack: Stack) -> None:
    """SIGTERM while input is published but not yet checkpointed (a long checkpoint interval
    makes sure of it), then the same state loss. The input since the last checkpoint is read
    again (at least once), and the restored worker must serve the same answers at the
    versions it served before or later ones: a version number is never published again with
    another score, and never goes back. The input arrives over a few seconds, so it was
    published in several conflation windows and is read again as a backlog; when that
    re-read spans more than one window (a loaded machine), an intermediate score can be a
    new version before the final one, which must equal the answer before the stop. This
    failed before the history mark (docs/reliability.md, finding 1: versions were durable
    only at checkpoints, and a graceful stop does not checkpoint)."""
    started = time.monotonic()
    ids = entities()
    slow = {"TRUSTSCORE_CHECKPOINT_INTERVAL": str(LONG_CHECKPOINT_S)}
    worker = stack.start_worker("w1", data_dir=stack.root / "state", extra=slow)
    await worker.wait_ready()
    waves = [first_wave(), later_wave(1)]
    step = 8
    for i in range(0, len(waves[0]), step):
        await stack.produce([waves[0][i : i + step]])
        await asyncio.sleep(0.5)
    await published(worker, len(waves[0]))
    assert scrape(worker).get("trustscore_checkpoints_total", 0.0) == 0
    before = await answers(worker, ids)
    history = await stored_history(worker, before, {})
    worker, lost, ready_s = await stop_lose_state_restart(stack, worker, "w2", "SIGTERM")
    await idle(worker, len(waves[0]))  # the uncheckpointed input, read again
    after = await answers(worker, ids)
    changed = {e: (before[e], after[e]) for e in ids if not same_or_later(before[e], after[e])}
    clashes = conflicting_versions(await published_history(stack))
    print(
        f"\ngraceful stop between checkpoints: {len(ids)} entities, {lost} RocksDB dirs "
        f"deleted, ready in {ready_s:.1f} s; {len(changed)} answer differently after the "
        f"restart; {len(clashes)} with a version published twice with different scores; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert not changed, [
        f"{e}: {brief(b)} before, {brief(a)} after" for e, (b, a) in changed.items()
    ]
    assert not clashes, clashes
    await stack.produce([waves[1]])
    await idle(worker, len(waves[1]))
    await stored_history(worker, await answers(worker, ids), history)
    assert not conflicting_versions(await published_history(stack))
