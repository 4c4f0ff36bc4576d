"""Sending one delivery on its channel (I/O): webhook (CONTRACT §5), e-mail over SMTP, and
push / SMS through a provider's HTTP endpoint. Each returns (sent, detail) and never raises:
one bad delivery must not stop the others (or the worker). Nothing here retries — the
delivery stage schedules the next attempt.

Webhooks go only to public addresses unless `TRUSTSCORE_WEBHOOK_ALLOW_PRIVATE` is set (a
subscriber must not make the worker call into its own network), never follow redirects, and
their answers are not read (only the status counts)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
import orjson

from trustscore_stream.db.notifications import DeliveryJob
from trustscore_stream.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-TrustScore-Signature"
DELIVERY_HEADER = "X-TrustScore-Delivery"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Channels:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, http: aiohttp.ClientSession, job: DeliveryJob) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self.settings.delivery_timeout_s):
                if job.channel == "webhook":
                    return await self._webhook(http, job)
                if job.channel == "email":
                    return await self._email(job)
                if job.channel in ("push", "sms"):
                    return await self._provider(http, job)
        except (TimeoutError, aiohttp.ClientError, aiosmtplib.SMTPException, OSError) as exc:
            return False, f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # a bad target or answer: this delivery fails, not the round
            log.exception("delivery %s (%s) raised", job.id, job.channel)
            return False, f"{type(exc).__name__}: {exc}"[:500]
        return False, f"unknown channel {job.channel!r}"

    async def _post(
        self, http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bool, str]:
        headers = {"Content-Type": "application/json", **headers}
        async with http.post(url, data=body, headers=headers, allow_redirects=False) as answer:
            answer.release()  # only the status counts; an endless answer is not read
            return 200 <= answer.status < 300, f"HTTP {answer.status}"

    async def _public(self, url: str) -> str | None:
        """Why `url` may not be called (a private, loopback or link-local address), or None."""
        if self.settings.webhook_allow_private:
            return None
        host = urlsplit(url).hostname or ""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                return f"refused: {host} resolves to a non-public address"
        return None

    async def _webhook(self, http: aiohttp.ClientSession, job: DeliveryJob) -> tuple[bool, str]:
        if not job.target:
            return False, "subscription has no webhook_url"
        if not job.secret:
            return False, "subscription deleted: no secret to sign with"
        refused = await self._public(job.target)
        if refused is not None:
            return False, refused
        body = orjson.dumps(job.notification)
        headers = {SIGNATURE_HEADER: signature(job.secret, body), DELIVERY_HEADER: job.id}
        return await self._post(http, job.target, body, headers)

    async def _provider(self, http: aiohttp.ClientSession, job: DeliveryJob) -> tuple[bool, str]:
        url = self.settings.push_url if job.channel == "push" else self.settings.sms_url
        if not url:
            return False, f"no {job.channel} provider configured"
        n = job.notification
        text = n["title"] if job.channel == "sms" else n["body"]
        body = orjson.dumps(
            {"user": job.target, "title": n["title"], "text": text, "notification": n}
        )
        return await self._post(http, url, body, {DELIVERY_HEADER: job.id})

    async def _email(self, job: DeliveryJob) -> tuple[bool, str]:
        s = self.settings
        if not job.target:
            return False, "subscription has no email address"
        if not s.smtp_host:
            return False, "no SMTP server configured (TRUSTSCORE_SMTP_HOST)"
        n = job.notification
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = job.target
        message["Subject"] = n["title"]
        message["X-TrustScore-Delivery"] = job.id
        message.set_content(n["body"] + "\n")  # the body ends with the recommended action
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
        )
        return True, "accepted by the SMTP server"
