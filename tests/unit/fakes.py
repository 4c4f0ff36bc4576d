"""In-memory stand-ins for the Faust objects the scoring engine touches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP


@dataclass
class Topic:
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)  # "acknowledged by the broker" at once
        return delivered


@dataclass
class Topics:
    history: Topic = field(default_factory=Topic)
    deltas: Topic = field(default_factory=Topic)
    links: Topic = field(default_factory=Topic)
    dlq: Topic = field(default_factory=Topic)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class Event:
    message: Message
    value: bytes = b""
