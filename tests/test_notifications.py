"""Notifications end to end through the real broker, a worker and the database: a webhook
receiver in this process (answering 200, or 500 twice then 200, or always 500), a real SMTP
server (aiosmtpd), the user's SSE channel, and authorisation between users."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.stack import CONTRACT, WALLET_A, WALLET_B, Stack, fraud, now_rfc3339, sale, scrape
from tests.test_sse import Reader
from trustscore_stream.embedded import free_port
from trustscore_stream.notifications.content import render
from trustscore_stream.partitioning import partition_for
from trustscore_stream.processes import WorkerProcess
from trustscore_stream.web.auth import issue_token

pytestmark = pytest.mark.integration

SECRET = "notifications-test-secret-at-least-32-bytes"
NFT = f"nft:eth:{CONTRACT}:7"


class Receiver:
    """Webhook endpoints: /ok answers 200; /flaky 500 twice per delivery, then 200;
    /down always 500. Keeps every request."""

    def __init__(self) -> None:
        self.requests: dict[str, list[tuple[dict[str, str], bytes, int]]] = defaultdict(list)
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        delivery = request.headers.get("X-TrustScore-Delivery", "")
        tries = sum(
            1 for h, _, _ in self.requests[path] if h.get("X-TrustScore-Delivery") == delivery
        )
        status = {"ok": 200, "down": 500}.get(path, 500 if tries < 2 else 200)
        self.requests[path].append((dict(request.headers), body, status))
        return web.Response(status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    # aiosmtpd logs each session's end at INFO from its own thread, sometimes after pytest has
    # closed the stream it captured: "--- Logging error ---" noise in the suite's output.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user, SECRET)}"}


async def call(
    worker: WorkerProcess, method: str, path: str, user: str, body: Any = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{worker.url}{path}", headers=auth(user), json=body) as answer,
    ):
        text = await answer.read()
        return answer.status, orjson.loads(text) if text else None


async def eventually(check: Callable[[], Any], timeout: float = 45.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


def nft_events(token: int, prefix: str) -> list[dict[str, Any]]:
    mint = sale(f"{prefix}-mint", token=token)
    mint.update(type="mint", payload={"to": WALLET_A})
    first = sale(f"{prefix}-sale", token=token)
    first["payload"].update(seller=WALLET_A, buyer=WALLET_B)
    return [mint, first]


async def test_webhooks_email_in_app_and_authorisation(
    stack: Stack, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    worker = stack.start_worker(
        "w1",
        extra={
            "TRUSTSCORE_JWT_SECRET": SECRET,
            "TRUSTSCORE_DELIVERY_BASE_DELAY": "0.2",
            "TRUSTSCORE_DELIVERY_MAX_DELAY": "0.4",
            "TRUSTSCORE_DELIVERY_MAX_ATTEMPTS": "4",
            "TRUSTSCORE_DELIVERY_POLL": "0.1",
            "TRUSTSCORE_SMTP_HOST": "127.0.0.1",
            "TRUSTSCORE_SMTP_PORT": str(smtp_port),
            "TRUSTSCORE_SMTP_STARTTLS": "0",
            "TRUSTSCORE_ESCALATE_AFTER": "3",
            "TRUSTSCORE_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
        },
    )
    await worker.wait_ready()
    subs: dict[str, dict[str, Any]] = {}
    for user, path, extra in (
        (
            "u1",
            "ok",
            {"channels": ["in_app", "webhook", "email"], "email": "u1@example.org", "locale": "de"},
        ),
        ("u2", "flaky", {"channels": ["webhook"]}),
        ("u3", "down", {"channels": ["webhook"]}),
    ):
        status, body = await call(
            worker,
            "POST",
            "/api/v1/subscriptions",
            user,
            {"entity": NFT, "webhook_url": receiver.url(path), **extra},
        )
        assert status == 201, body
        assert len(body["webhook_secret"]) == 64
        subs[user] = body
    status, bad = await call(worker, "POST", "/api/v1/subscriptions", "u1", {"entity": "nft:x"})
    assert status == 400 and bad["error"] == "invalid_subscription"
    live = await Reader(f"{worker.url}/api/v1/stream?user=me", auth("u1")).start()
    await asyncio.sleep(2)  # the subscriptions reach the notifier's table

    await stack.produce(nft_events(7, "n"))

    async def scored() -> bool:
        status, body = await call(worker, "GET", f"/api/v1/scores/{NFT}", "u1")
        return status == 200 and body["score"] >= 50

    await eventually(scored, what="the NFT's first score")
    await asyncio.sleep(1)  # its delta reaches the notifier: the watch is armed above 50
    await stack.produce([fraud("rug")])

    async def threshold(user: str) -> Any:
        _, found = await call(worker, "GET", "/api/v1/notifications", user)
        return next((n for n in found if n["kind"] == "score_threshold"), None)

    note = await eventually(lambda: threshold("u1"), what="u1's score_threshold notification")
    assert note["entity"] == NFT and note["severity"] in ("high", "critical")
    assert note["data"]["score"] < 50 and note["read_at"] is None

    # The webhook: the notification JSON, signed with the subscription's secret.
    async def delivered(path: str, nid: str) -> Any:
        return [r for r in receiver.requests[path] if orjson.loads(r[1])["id"] == nid]

    ok = await eventually(lambda: delivered("ok", note["id"]), what="the webhook")
    headers, raw, _ = ok[0]
    expected = hmac.new(subs["u1"]["webhook_secret"].encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-TrustScore-Signature"] == f"sha256={expected}"
    assert orjson.loads(raw) == {**note, "read_at": None}
    _, report = await call(worker, "GET", f"/api/v1/notifications/{note['id']}/deliveries", "u1")
    webhook = next(d for d in report if d["channel"] == "webhook")
    assert headers["X-TrustScore-Delivery"] == webhook["id"]

    # E-mail in the subscription's locale: the subject is the German title.
    async def mailed() -> Any:
        for raw_mail in box.messages:
            mail = message_from_bytes(raw_mail)
            if mail["X-TrustScore-Delivery"] in {d["id"] for d in report}:
                return mail
        return None

    mail = await eventually(mailed, what="the e-mail")
    subject = str(make_header(decode_header(mail["Subject"])))
    facts = {k: v for k, v in note["data"].items() if k not in ("version", "action")}
    assert (
        subject == note["title"] == render(note["kind"], note["severity"], NFT, facts, "de").title
    )
    assert subject != render(note["kind"], note["severity"], NFT, facts, "en").title

    # 500, 500, 200: one success, three attempts recorded.
    flaky = await eventually(lambda: threshold("u2"), what="u2's notification")

    async def sent(user: str, nid: str, status: str) -> Any:
        _, report = await call(worker, "GET", f"/api/v1/notifications/{nid}/deliveries", user)
        return report if report and report[0]["status"] == status else None

    report = await eventually(lambda: sent("u2", flaky["id"], "sent"), what="the flaky delivery")
    assert [a["outcome"] for a in report[0]["attempts"]] == ["failed", "failed", "sent"]
    tries = await delivered("flaky", flaky["id"])
    assert [status for _, _, status in tries] == [500, 500, 200]

    # Always 500: dead after all attempts, all recorded, and dead-lettered.
    down = await eventually(lambda: threshold("u3"), what="u3's notification")
    report = await eventually(lambda: sent("u3", down["id"], "dead"), what="the dead delivery")
    assert [a["outcome"] for a in report[0]["attempts"]] == ["failed"] * 4
    assert report[0]["last_error"] == "HTTP 500"
    dead = await stack.consume("trustscore-deliveries-dlq", until=1)
    assert report[0]["id"] in {orjson.loads(r.value)["delivery_id"] for r in dead}

    # The same in the worker's metrics, by notification kind, channel and delivery status.
    metrics = scrape(worker)
    webhook = 'channel="webhook",kind="score_threshold"'  # labels as the exposition orders them
    attempts = {
        result: metrics[f'trustscore_notification_deliveries_total{{{webhook},result="{result}"}}']
        for result in ("sent", "retry", "dead")
    }
    assert attempts["retry"] >= 5  # u2's two failures, u3's first three
    assert attempts["dead"] >= 1  # u3's last
    assert attempts["sent"] >= 2  # u1's and u2's
    assert metrics["trustscore_notifications_recorded_total"] >= 3
    assert metrics["trustscore_db_write_seconds_count"] > 0  # history and notifications

    # A critical notification left unread is sent again on the next channel after in_app.
    async def escalated() -> Any:
        _, found = await call(worker, "GET", "/api/v1/notifications?unread=true", "u1")
        for n in (n for n in found if n["severity"] == "critical"):
            _, report = await call(
                worker, "GET", f"/api/v1/notifications/{n['id']}/deliveries", "u1"
            )
            again = [d for d in report if d["purpose"] == "escalation" and d["status"] == "sent"]
            if again:
                return n, again
        return None

    critical, again = await eventually(escalated, what="an escalation")
    assert [d["channel"] for d in again] == ["webhook"]
    assert len(await delivered("ok", critical["id"])) == 2  # the first send and the reminder

    # In-app: listed, pushed on the user's SSE channel, marked read.
    await live.wait_for(1)
    pushed = [orjson.loads(e.data) for e in live.events if e.event == "notification"]
    assert note["id"] in {p["id"] for p in pushed}
    status, read = await call(worker, "POST", f"/api/v1/notifications/{note['id']}/read", "u1")
    assert status == 200 and read["read_at"] is not None
    _, unread = await call(worker, "GET", "/api/v1/notifications?unread=true", "u1")
    assert note["id"] not in {n["id"] for n in unread}
    await live.close()

    # Another user's ids are not found; a missing token is 401.
    mine = subs["u1"]["id"]
    for method, path in (
        ("GET", f"/api/v1/subscriptions/{mine}"),
        ("DELETE", f"/api/v1/subscriptions/{mine}"),
        ("POST", f"/api/v1/notifications/{note['id']}/read"),
        ("GET", f"/api/v1/notifications/{note['id']}/deliveries"),
    ):
        status, body = await call(worker, method, path, "u2")
        assert (status, body["error"]) == (404, "not_found"), (method, path)
    _, theirs = await call(worker, "GET", "/api/v1/notifications", "u2")
    assert note["id"] not in {n["id"] for n in theirs}
    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/api/v1/subscriptions") as a:
        assert a.status == 401
    status, _ = await call(worker, "DELETE", f"/api/v1/subscriptions/{mine}", "u1")
    assert status == 204
    _, left = await call(worker, "GET", "/api/v1/subscriptions", "u1")
    assert left == []


async def test_a_flood_of_changes_is_one_notification_and_a_digest(stack: Stack) -> None:
    """100 score changes of one entity within seconds, each significant for the subscription:
    the first is sent, the others are grouped into one digest. The notifier's input, the
    deltas topic, is fed directly: scoring is not what this test is about."""
    worker = stack.start_worker(
        "w1",
        extra={
            "TRUSTSCORE_JWT_SECRET": SECRET,
            "TRUSTSCORE_NOTIFY_DIGEST_INTERVAL": "8",
            "TRUSTSCORE_NOTIFY_USER_CAP_PER_HOUR": "2",
        },
    )
    await worker.wait_ready()
    entity = f"nft:eth:{CONTRACT}:9"
    status, _ = await call(
        worker,
        "POST",
        "/api/v1/subscriptions",
        "u4",
        {"entity": entity, "change_pct": 0.5, "channels": ["in_app"]},
    )
    assert status == 201
    await asyncio.sleep(2)  # the subscription reaches the notifier's table
    # u6 watches four NFTs; the cap lets two falls through at once, the rest wait.
    capped = [f"nft:eth:{CONTRACT}:{t}" for t in range(20, 24)]
    for other in capped:
        status, _ = await call(
            worker,
            "POST",
            "/api/v1/subscriptions",
            "u6",
            {"entity": other, "change_pct": 0.5, "channels": ["in_app"]},
        )
        assert status == 201
    await asyncio.sleep(2)  # the subscriptions reach the notifier's table
    producer = await stack.producer()
    for version, score in ((1, 75.0), (2, 70.0)):
        for other in capped:
            await producer.send_and_wait(
                stack.topic("trustscore-deltas"),
                orjson.dumps(
                    {
                        "entity": other,
                        "score": score,
                        "previous": None,
                        "delta": None,
                        "level": "moderate",
                        "factors_changed": [],
                        "cause_event_id": f"c{version}",
                        "version": version,
                        "at": now_rfc3339(),
                        "model_version": "1",
                    }
                ),
                key=other.encode(),
                partition=partition_for(other, stack.partitions),
            )
        await asyncio.sleep(1)
    partition = partition_for(entity, stack.partitions)
    previous = None
    for i in range(100):  # moderate, bouncing between 75 and 74: each move is 1.3 %
        score = 75.0 - (i % 2)
        delta = {
            "entity": entity,
            "score": score,
            "previous": previous,
            "delta": None if previous is None else score - previous,
            "level": "moderate",
            "factors_changed": ["market_integrity"],
            "cause_event_id": f"flood-{i}",
            "version": i + 1,
            "at": now_rfc3339(),
            "model_version": "1",
        }
        previous = score
        await producer.send_and_wait(
            stack.topic("trustscore-deltas"),
            orjson.dumps(delta),
            key=entity.encode(),
            partition=partition,
        )
        await asyncio.sleep(0.03)

    async def digest() -> Any:
        _, found = await call(worker, "GET", "/api/v1/notifications", "u4")
        return found if any(n["data"].get("digest") for n in found) else None

    found = await eventually(digest, timeout=30, what="the digest")
    await asyncio.sleep(2)  # nothing more may come
    _, found = await call(worker, "GET", "/api/v1/notifications", "u4")
    single = [n for n in found if not n["data"].get("digest")]
    digests = [n for n in found if n["data"].get("digest")]
    assert [n["kind"] for n in single] == ["score_change"]
    assert len(digests) == 1
    # The first delta is the baseline; the second is the sent fall; the 98 others grouped.
    assert digests[0]["data"]["count"] == 98

    # u6: two immediate, two held back by the user's hourly cap and sent as digests.
    _, found = await call(worker, "GET", "/api/v1/notifications", "u6")
    assert sorted(bool(n["data"].get("digest")) for n in found) == [False, False, True, True]
    assert len({n["entity"] for n in found}) == 4


def nft_envelope(kind: str, event_id: str, token: int, payload: dict[str, Any]) -> dict[str, Any]:
    envelope = sale(event_id, token=token)
    envelope.update(type=kind, payload=payload, source="chain")
    return envelope


def finding_on(entity: str, event_id: str) -> dict[str, Any]:
    envelope = fraud(event_id)
    envelope["payload"].update(entity=entity, finding="stolen", severity="critical")
    return envelope


async def test_a_wallet_subscription_covers_the_nfts_it_receives(stack: Stack) -> None:
    """Subscribed to a wallet: an NFT it received after subscribing is watched for it (a
    critical finding on that NFT notifies), one that went to another wallet is not."""
    worker = stack.start_worker("w1", extra={"TRUSTSCORE_JWT_SECRET": SECRET})
    await worker.wait_ready()
    holder, other = "0x" + "c7" * 20, "0x" + "d8" * 20
    status, _ = await call(
        worker,
        "POST",
        "/api/v1/subscriptions",
        "u5",
        {"entity": f"wallet:eth:{holder}", "channels": ["in_app"]},
    )
    assert status == 201
    await asyncio.sleep(4)  # every worker reloads wallet subscriptions every 3 s
    for token, to in ((11, holder), (12, other)):
        await stack.produce(
            [
                [
                    nft_envelope("mint", f"m{token}", token, {"to": WALLET_A}),
                    nft_envelope("transfer", f"t{token}", token, {"from": WALLET_A, "to": to}),
                ]
            ]
        )
    await asyncio.sleep(2)  # the transfers' deltas: each watch starts above the line
    await stack.produce([finding_on(f"nft:eth:{CONTRACT}:{t}", f"f{t}") for t in (11, 12)])

    async def notified() -> Any:
        _, found = await call(worker, "GET", "/api/v1/notifications", "u5")
        kinds = {n["kind"] for n in found}
        return found if {"fraud_finding", "score_threshold"} <= kinds else None

    found = await eventually(notified, what="the wallet's notifications")
    assert {n["entity"] for n in found} == {f"nft:eth:{CONTRACT}:11"}
    finding = next(n for n in found if n["kind"] == "fraud_finding")
    assert finding["severity"] == "critical" and finding["data"]["finding"] == "stolen"
