"""HTTP calls from the operations commands to the workers' /ops/v1 endpoints (web/ops.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp


class OpsError(RuntimeError):
    """A command that cannot complete: the message says why (exit status 1)."""


def normalise(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class WorkerClient:
    def __init__(self, token: str | None, timeout_s: float = 60.0) -> None:
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(
        self,
        method: str,
        base: str,
        path: str,
        params: Sequence[tuple[str, str]] | Mapping[str, str] = (),
    ) -> tuple[int, Any]:
        """(status, decoded JSON body) of one call; OpsError if the worker does not answer
        or answers something that is not JSON."""
        url = f"{normalise(base)}{path}"
        try:
            async with (
                aiohttp.ClientSession(headers=self._headers, timeout=self._timeout) as http,
                http.request(method, url, params=params) as answer,
            ):
                try:
                    body = await answer.json(content_type=None)
                except ValueError:
                    text = (await answer.text())[:200]
                    raise OpsError(f"{url}: {answer.status} with a non-JSON body: {text}") from None
                return answer.status, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OpsError(f"{url}: no answer ({type(exc).__name__}: {exc})") from None

    async def call_ok(
        self,
        method: str,
        base: str,
        path: str,
        params: Sequence[tuple[str, str]] | Mapping[str, str] = (),
    ) -> Any:
        status, body = await self.call(method, base, path, params)
        if status >= 400:
            raise OpsError(f"{normalise(base)}{path}: {status} {describe(body)}")
        return body

    async def discover(self, seeds: Sequence[str]) -> dict[str, Any]:
        """The status of every worker reachable from `seeds` (each worker lists the others
        as the consumer group's assignment knows them), by URL."""
        pending = [normalise(s) for s in seeds]
        found: dict[str, Any] = {}
        errors: list[str] = []
        while pending:
            url = pending.pop(0)
            if url in found:
                continue
            try:
                status = await self.call_ok("GET", url, "/ops/v1/status")
            except OpsError as exc:
                errors.append(str(exc))
                continue
            found[url] = status
            for other in status.get("workers", {}):
                if normalise(other) not in found:
                    pending.append(normalise(other))
        if not found:
            raise OpsError("no worker answered: " + "; ".join(errors))
        return found


def describe(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return f"{body['error']}: {body.get('detail', '')}".rstrip(": ")
    return str(body)[:200]
