"""Channel senders: never raise, refuse non-public webhook targets unless allowed."""

from __future__ import annotations

import hashlib
import hmac

import aiohttp

from trustscore_stream.db.notifications import DeliveryJob
from trustscore_stream.notifications.channels import Channels, signature
from trustscore_stream.notifications.records import dedup_key
from trustscore_stream.settings import Settings

NOTE = {"id": "n1", "title": "t", "body": "b", "data": {}}


def job(channel: str, target: str | None, secret: str | None = "s") -> DeliveryJob:
    return DeliveryJob("d1", channel, target, 0, NOTE, secret, None)


async def test_webhooks_to_private_addresses_are_refused_by_default() -> None:
    channels = Channels(Settings(delivery_timeout_s=2))
    async with aiohttp.ClientSession() as http:
        for url in ("http://127.0.0.1:9/hook", "http://10.1.2.3/x", "http://[::1]:9/"):
            sent, detail = await channels.send(http, job("webhook", url))
            assert not sent and detail.startswith("refused"), (url, detail)


async def test_a_failing_or_odd_delivery_reports_instead_of_raising() -> None:
    channels = Channels(Settings(delivery_timeout_s=2, webhook_allow_private=True))
    async with aiohttp.ClientSession() as http:
        assert (await channels.send(http, job("webhook", "http://127.0.0.1:9/")))[0] is False
        assert await channels.send(http, job("webhook", None)) == (
            False,
            "subscription has no webhook_url",
        )
        assert (await channels.send(http, job("email", "a@b.c")))[1].startswith("no SMTP")
        assert (await channels.send(http, job("fax", "x")))[1] == "unknown channel 'fax'"


def test_signature_and_keys() -> None:
    expected = hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    assert signature("k", b"{}") == f"sha256={expected}"
    # one delta, two findings (two causes): two notifications; two subscriptions: two
    assert dedup_key("s1", "e", "fraud_finding", "E1|c|3") != dedup_key(
        "s1", "e", "fraud_finding", "E2|c|3"
    )
    assert dedup_key("s1", "e", "k", "c") != dedup_key("s2", "e", "k", "c")
