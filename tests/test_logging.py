"""Structured logging end to end: one worker on the real broker with the hot stages at DEBUG,
a webhook subscription, events that lead to a notification and its delivery. Every line of
the worker's log is a JSON object with the required fields, and one `event_id` is followed
from ingest to the delivery by searching the log for it, as an operator would with grep."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.stack import Stack, fraud
from tests.test_notifications import (
    NFT,
    SECRET,
    Receiver,
    call,
    eventually,
    nft_events,
    receiver,  # noqa: F401  (the fixture)
)

pytestmark = pytest.mark.integration

REQUIRED = ("timestamp", "level", "component", "worker", "message")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WORKER_ID = "log-test-w1"
# The path one event takes; `notify` is the notifier reading the delta.
STAGES = ("ingest", "route", "score", "delta", "notify", "notification", "delivery")


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log as JSON (a line that is not JSON fails the test)."""
    lines = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pytest.fail(f"log line {number} is not JSON: {raw[:300]!r}")
        assert isinstance(line, dict), raw
        lines.append(line)
    return lines


def mentions(line: dict[str, Any], event_id: str) -> bool:
    return line.get("event_id") == event_id or event_id in (line.get("event_ids") or ())


async def test_one_event_is_followed_from_ingest_to_delivery(
    stack: Stack,
    receiver: Receiver,  # noqa: F811
) -> None:
    worker = stack.start_worker(
        "w1",
        extra={
            "TRUSTSCORE_JWT_SECRET": SECRET,
            "TRUSTSCORE_WORKER_ID": WORKER_ID,
            "TRUSTSCORE_LOG_LEVEL": "INFO",
            "TRUSTSCORE_LOG_LEVELS": (
                "ingest=DEBUG,route=DEBUG,scoring=DEBUG,notify=DEBUG,delivery=DEBUG"
            ),
            "TRUSTSCORE_LOG_FORMAT": "json",
            "TRUSTSCORE_DELIVERY_POLL": "0.1",
            "TRUSTSCORE_CHECKPOINT_INTERVAL": "1",
            "TRUSTSCORE_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
        },
    )
    await worker.wait_ready()
    status, sub = await call(
        worker,
        "POST",
        "/api/v1/subscriptions",
        "u1",
        {"entity": NFT, "channels": ["webhook"], "webhook_url": receiver.url("ok")},
    )
    assert status == 201, sub
    await asyncio.sleep(2)  # the subscription reaches the notifier's table

    await stack.produce(nft_events(7, "lg"))

    async def scored() -> bool:
        status, body = await call(worker, "GET", f"/api/v1/scores/{NFT}", "u1")
        return status == 200 and body["score"] >= 50

    await eventually(scored, what="the NFT's first score")
    await asyncio.sleep(1)  # its delta reaches the notifier: the watch is armed above 50
    await stack.produce([fraud("lg-rug")])

    async def delivered() -> Any:
        return receiver.requests["ok"]

    await eventually(delivered, what="the webhook delivery")

    def followed() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for line in read_lines(worker.log_path):
            if mentions(line, "lg-rug"):
                found.setdefault(line.get("stage", ""), []).append(line)
        return found

    async def every_stage() -> Any:
        found = followed()
        return found if all(stage in found for stage in STAGES) else None

    try:
        stages = await eventually(every_stage, timeout=30, what="a line for every stage")
    except AssertionError:
        found = followed()
        raise AssertionError(
            f"stages missing: {[s for s in STAGES if s not in found]}; "
            f"lines for the event: {found}; log tail: {worker.log_tail(3000)}"
        ) from None

    assert stages["ingest"][0]["component"] == "ingest"
    assert stages["route"][0]["component"] == "route"
    assert {line["component"] for line in stages["score"]} == {"scoring"}
    # The fraud finding is about the collection; the watched NFT is rescored with it.
    assert NFT in {line["entity"] for line in stages["delta"]}
    assert stages["notification"][0]["component"] == "notify"
    delivery = stages["delivery"][0]
    assert delivery["component"] == "delivery" and delivery["channel"] == "webhook"
    assert delivery["result"] == "sent" and delivery["level"] == "INFO"
    notification_ids = {line["notification_id"] for line in stages["notification"]}
    assert delivery["notification_id"] in notification_ids

    lines = read_lines(worker.log_path)
    for line in lines:
        missing = [key for key in REQUIRED if key not in line]
        assert not missing, f"{missing} missing in {line}"
        assert RFC3339_UTC.match(line["timestamp"]), line
        assert line["worker"] == WORKER_ID
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    # Batch-level lines at INFO: the scoring checkpoints.
    checkpoints = [line for line in lines if line.get("stage") == "checkpoint"]
    assert checkpoints and {line["level"] for line in checkpoints} == {"INFO"}
    # Faust's and aiokafka's own lines went through the same formatter.
    components = {line["component"] for line in lines}
    assert {"faust", "aiokafka"} <= components, components
    # Components left at the default level wrote no DEBUG lines.
    debug = {line["component"] for line in lines if line["level"] == "DEBUG"}
    assert debug <= {"ingest", "route", "scoring", "notify", "delivery"}, debug
    # No secret reached the log.
    text = worker.log_path.read_text()
    assert SECRET not in text and sub["webhook_secret"] not in text
