"""The operations commands (`trustscore-stream dlq|rescore|verify|status`) run as a user runs
them, as a subprocess, against the real broker and a real worker."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
import zlib
from typing import Any

import orjson
import pytest

from tests.stack import CONTRACT, Stack, fraud, now_rfc3339, sale, scrape
from trustscore_stream.partitioning import partition_for
from trustscore_stream.processes import WorkerProcess

pytestmark = pytest.mark.integration

COLLECTION = f"collection:eth:{CONTRACT}"
TOKEN = "ops-test-token-0123456789"


def nft(token: int) -> str:
    return f"nft:eth:{CONTRACT}:{token}"


async def cli(
    stack: Stack, *args: str, token: str | None = None, worker: WorkerProcess | None = None
) -> tuple[int, str, str]:
    env = {
        **stack.env(),
        "TRUSTSCORE_BROKER": stack.broker.url,
        "TRUSTSCORE_EMBEDDED_BROKER": "1" if stack.embedded else "0",
        "PATH": "/usr/bin:/bin",
    }
    if token:
        env["TRUSTSCORE_OPS_TOKEN"] = token
    extra = ["--worker", worker.url] if worker is not None else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trustscore_stream.cli",
        *args,
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def cli_json(stack: Stack, *args: str, **kwargs: Any) -> Any:
    code, out, err = await cli(stack, *args, "--json", **kwargs)
    assert code == 0, err
    return json.loads(out)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


async def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, KeyError, AssertionError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.25)


def history(worker: WorkerProcess, entity: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = get_json(f"{worker.url}/api/v1/scores/{entity}/history")
    return rows


async def test_dlq_replay_processes_fixed_events_exactly_once(stack: Stack) -> None:
    worker = stack.start_worker("w1")
    await worker.wait_ready()
    # A producer bug stamps schema_version 2 on v1 envelopes: ingest dead-letters them.
    # s3 is then re-sent correctly by the producer itself, so it is processed already.
    await stack.produce(
        [
            [{**sale(f"s{i}", token=i), "schema_version": 2} for i in (1, 2, 3)],
            b"not json",
            sale("s3", token=3),
        ]
    )
    await stack.lane_events(until=1)
    await stack.consume("trustscore-events-dlq", until=4, settle=0.5)

    listed = await cli_json(stack, "dlq", "list")
    assert listed["by_reason"] == {"unsupported_schema_version": 3, "invalid_json": 1}
    assert sorted(d["event_id"] or "" for d in listed["dead_letters"]) == ["", "s1", "s2", "s3"]
    only = await cli_json(stack, "dlq", "list", "--reason", "invalid_json")
    assert only["total"] == 1 and only["dead_letters"][0]["raw"] == "not json"
    first = next(d for d in listed["dead_letters"] if d["event_id"] == "s1")
    shown = await cli_json(stack, "dlq", "show", first["source"])
    assert shown[0]["raw_decoded"]["event_id"] == "s1"
    assert shown[0]["record"]["reason"] == "unsupported_schema_version"
    shown_dlq = await cli_json(stack, "dlq", "show", "--dlq", first["dlq"])
    assert shown_dlq[0]["raw_decoded"]["schema_version"] == 2
    code, _, err = await cli(stack, "dlq", "show", "7:99999")
    assert code == 1 and "no dead letter" in err

    # Without the fix nothing is sent: the envelopes are still invalid.
    unfixed = await cli_json(stack, "dlq", "replay", "--reason", "unsupported_schema_version")
    assert unfixed["replayed"] == 0
    assert unfixed["summary"] == {"skipped:still_invalid:unsupported_schema_version": 3}
    # A dry run of the fix sends nothing either.
    dry = await cli_json(stack, "dlq", "replay", "--set", "schema_version=1", "--dry-run")
    assert dry["replayed"] == 0 and dry["summary"] == {"input": 3, "skipped:no_event_id": 1}

    fixed = await cli_json(stack, "dlq", "replay", "--set", "schema_version=1")
    assert fixed["replayed"] == 3
    assert fixed["summary"] == {"input": 3, "skipped:no_event_id": 1}
    again = await cli_json(stack, "dlq", "replay", "--set", "schema_version=1")
    assert again["replayed"] == 0
    assert again["summary"] == {"skipped:already_replayed": 3, "skipped:no_event_id": 1}
    # Even re-sent on purpose (ignoring the markers), the pipeline drops the repeats.
    forced = await cli_json(
        stack, "dlq", "replay", "--set", "schema_version=1", "--include-replayed"
    )
    assert forced["replayed"] == 3
    listed = await cli_json(stack, "dlq", "list", "--reason", "unsupported_schema_version")
    assert all(d["replayed"] for d in listed["dead_letters"])

    # s1 and s2 once (from the first replay), s3 once (the producer's own re-send): the
    # first replay of s3 and all three forced re-sends are dropped as repeats.
    await wait_for(lambda: scrape(worker)["trustscore_duplicates_dropped_total"] >= 4)
    lanes = await stack.lane_events(until=3, settle=2.0)
    ids = sorted(item["event_id"] for items in lanes.values() for item in items)
    assert ids == ["s1", "s2", "s3"]
    assert scrape(worker)["trustscore_duplicates_dropped_total"] == 4
    for token in (1, 2, 3):
        rows = await wait_for(lambda t=token: history(worker, nft(t)))  # type: ignore[misc]
        assert [r["version"] for r in rows] == [1]
        assert rows[0]["cause_event_id"] == f"s{token}"

    # After route: a dead letter of the lane processor goes back to its lane, where the
    # scoring stage's own dedup memory applies it at most once.
    lane_topic = stack.topic("trustscore-lane-normal")

    def exhausted(envelope: dict[str, Any]) -> dict[str, Any]:
        return {
            "reason": "retries_exhausted",
            "detail": "5 attempts failed; last error: database unavailable",
            "raw": orjson.dumps(envelope).decode(),
            "topic": lane_topic,
            "partition": None,
            "offset": None,
            "at": now_rfc3339(),
            "event_id": envelope["event_id"],
        }

    producer = await stack.producer()
    for envelope in (sale("r1", token=11), sale("s1", token=1)):  # s1: scored already
        await producer.send_and_wait(
            stack.topic("trustscore-events-dlq"), orjson.dumps(exhausted(envelope))
        )
    lane = await cli_json(stack, "dlq", "replay", "--reason", "retries_exhausted")
    assert lane["summary"] == {"lane": 2}
    partition = partition_for(COLLECTION, stack.partitions)
    assert {(p["target"], p["partition"]) for p in lane["plans"]} == {(lane_topic, partition)}
    again = await cli_json(
        stack, "dlq", "replay", "--reason", "retries_exhausted", "--include-replayed"
    )
    assert again["replayed"] == 2
    rows = await wait_for(lambda: history(worker, nft(11)))
    await wait_for(lambda: scrape(worker)["trustscore_duplicates_dropped_total"] >= 7)
    await asyncio.sleep(2.0)
    assert [r["version"] for r in history(worker, nft(11))] == [1]
    assert [r["version"] for r in history(worker, nft(1))] == [1]
    # r1 repeated once, s1 twice, all in scoring's memory: 4 + 3 duplicates.
    assert scrape(worker)["trustscore_duplicates_dropped_total"] == 7


async def test_rescore_verify_and_status(stack: Stack) -> None:
    fast = {"TRUSTSCORE_OPS_TOKEN": TOKEN, "TRUSTSCORE_CHECKPOINT_INTERVAL": "1"}
    worker = stack.start_worker("w1", extra=fast)
    await worker.wait_ready()
    await stack.produce([sale("a1", token=1), sale("a2", token=2)])
    await wait_for(lambda: history(worker, nft(1)) and history(worker, nft(2)))
    # A critical finding on the collection moves every NFT's score, but NFTs nobody
    # watches are scored on read: their stored version lags until their next event.
    await stack.produce([fraud("f1")])
    await wait_for(lambda: len(history(worker, COLLECTION)) >= 2)

    code, _, err = await cli(stack, "rescore", nft(1), worker=worker)
    assert code == 1 and "unauthorized" in err
    verified = await cli_json(stack, "verify", "--sample", "1000", token=TOKEN, worker=worker)
    statuses = {c["entity"]: c["status"] for c in verified["checks"]}
    assert statuses[nft(1)] == statuses[nft(2)] == "lagging"
    assert statuses[COLLECTION] == "ok"
    code, out, _ = await cli(stack, "verify", "--strict", token=TOKEN, worker=worker)
    assert code == 1 and "mismatch" in out

    dry = await cli_json(stack, "rescore", nft(1), "--dry-run", token=TOKEN, worker=worker)
    assert dry["status"] == "dry_run" and dry["differs"]
    before = dry["before"]["version"]
    done = await cli_json(stack, "rescore", nft(1), token=TOKEN, worker=worker)
    assert done["status"] == "published"
    assert done["after"]["version"] == before + 1
    assert done["after"]["score"] == dry["recomputed"]["score"]
    same = await cli_json(stack, "rescore", nft(1), token=TOKEN, worker=worker)
    assert same["status"] == "unchanged" and same["after"]["version"] == before + 1
    rows = await wait_for(
        lambda: len(history(worker, nft(1))) == before + 1 and history(worker, nft(1))
    )
    assert [r["version"] for r in rows] == list(range(before + 1, 0, -1))
    assert rows[0]["cause_event_id"].startswith("rescore:")
    deltas = await stack.consume("trustscore-deltas", until=10**6, timeout=3)
    rescored = [orjson.loads(d.value) for d in deltas if d.key == nft(1).encode()]
    assert [d["version"] for d in rescored][-1] == before + 1
    code, _, err = await cli(stack, "rescore", nft(999), token=TOKEN, worker=worker)
    assert code == 1 and "not_found" in err

    await cli(stack, "rescore", nft(2), token=TOKEN, worker=worker)
    code, out, _ = await cli(stack, "verify", "--strict", token=TOKEN, worker=worker)
    assert code == 0, out

    status = await cli_json(stack, "status", token=TOKEN, worker=worker)
    (only,) = status["workers"].values()
    assert only["state_partitions"] == list(range(stack.partitions))
    assert only["tables"]["entity-state"]["keys"] > 0
    ingest_group = status["groups"][f"{stack.app_id}-ingest"]
    assert ingest_group["members"] is None or len(ingest_group["members"]) == 1
    ingest_lag = [r for r in status["lag"] if r["group"] == f"{stack.app_id}-ingest"]
    assert len(ingest_lag) == stack.partitions
    assert sum(r["end"] for r in ingest_lag) == 3  # three records were produced
    await wait_for(lambda: all(r["lag"] == 0 for r in ingest_lag))
    code, out, _ = await cli(stack, "status", token=TOKEN, worker=worker)
    assert code == 0 and "total lag" in out and "entity-state" in out

    # Corrupt the collection's stored score in its state changelog, then start a worker
    # that restores from it: verify must find the mismatch and exit 1.
    await asyncio.sleep(2.0)  # a checkpoint (1 s) and Faust's commit cover everything
    worker.stop()
    changelog = f"{stack.app_id}-entity-state-changelog"
    partition = partition_for(COLLECTION, stack.partitions)
    key = f"s:{partition}:{zlib.crc32(COLLECTION.encode()) % 32}".encode()
    records = await stack.consume(changelog.removeprefix(stack.prefix), until=10**6, timeout=5)
    latest = [r for r in records if r.key == key and r.partition == partition][-1]
    bucket = orjson.loads(latest.value)
    stored_score = bucket[1][COLLECTION]["published"]["score"]
    bucket[1][COLLECTION]["published"]["score"] = round(stored_score - 17.3, 1)
    producer = await stack.producer()
    await producer.send_and_wait(changelog, orjson.dumps(bucket), key=key, partition=partition)
    restored = stack.start_worker("w2", extra=fast)
    await restored.wait_ready()
    code, out, _ = await cli(stack, "verify", token=TOKEN, worker=restored)
    assert code == 1
    assert COLLECTION in out and "mismatch" in out
    checks = await cli(stack, "verify", "--entity", nft(1), token=TOKEN, worker=restored)
    assert checks[0] == 0
