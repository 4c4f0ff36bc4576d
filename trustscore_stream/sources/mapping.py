"""Declarative mapping of a provider's JSON item to an envelope (pure).

A mapping names the envelope `type` and `source`, and for each envelope field (dotted, e.g.
`payload.floor_price`) either a literal or a field path into the item with an optional
conversion. `event_id` defaults to the source name plus a hash of the item, so an unchanged
item polled again carries the same id and the pipeline's dedup drops it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson

from trustscore_stream.sources.fieldpath import WILDCARD, FieldPath

Conversion = Literal["keep", "money", "int", "float", "str", "bool", "unix_time"]
CONVERSIONS: tuple[str, ...] = ("keep", "money", "int", "float", "str", "bool", "unix_time")


class MappingError(ValueError):
    """An item that the mapping cannot turn into an envelope (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    target: str  # dotted envelope field, e.g. "payload.floor_price"
    path: FieldPath | None = None
    literal: Any = None
    conversion: Conversion = "keep"
    optional: bool = False

    def value(self, item: Any) -> tuple[bool, Any]:
        """(present, value) for this item; raises MappingError."""
        if self.path is None:
            return True, self.literal
        found = self.path.find(item)
        if not found or found[0] is None:
            if self.optional:
                return False, None
            raise MappingError(f"{self.target}: {self.path.text} matched nothing")
        if len(found) > 1:
            raise MappingError(f"{self.target}: {self.path.text} matched {len(found)} values")
        return True, convert(found[0], self.conversion, self.target)


@dataclass(frozen=True, slots=True)
class ItemMapping:
    """How one provider's items become envelopes."""

    name: str
    type: str
    source: str
    items: FieldPath
    fields: tuple[FieldRule, ...]
    event_id: FieldRule | None = None
    occurred_at: FieldRule | None = None
    base: Mapping[str, Any] = field(default_factory=dict)

    def select_items(self, document: Any) -> list[Any]:
        found = self.items.find(document)
        if len(found) == 1 and isinstance(found[0], list) and WILDCARD not in self.items.steps:
            return list(found[0])  # `items = "$.data"` naming a list means its elements
        return found

    def envelope(self, item: Any, now: datetime) -> dict[str, Any]:
        """The envelope dict for one item (validated later by the envelope decoder)."""
        envelope: dict[str, Any] = {"type": self.type, "source": self.source, "schema_version": 1}
        for rule in self.fields:
            present, value = rule.value(item)
            if present:
                _set(envelope, rule.target, value)
        if self.event_id is not None:
            _, event_id = self.event_id.value(item)
            envelope["event_id"] = f"{self.name}:{event_id}"
        else:
            envelope["event_id"] = f"{self.name}:{item_digest(item)}"
        occurred = self.occurred_at.value(item)[1] if self.occurred_at is not None else now
        envelope["occurred_at"] = _rfc3339(occurred) if isinstance(occurred, datetime) else occurred
        return envelope


def item_digest(item: Any) -> str:
    """A stable short hash of an item's content (keys sorted)."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _set(envelope: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    target = envelope
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def convert(value: Any, conversion: Conversion, target: str) -> Any:
    """Convert a provider value; raises MappingError naming the field."""
    try:
        if conversion == "keep":
            return value
        if conversion == "money":
            return _money(value)
        if conversion == "int":
            return _integer(value)
        if conversion == "float":
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            return number
        if conversion == "str":
            if isinstance(value, dict | list):
                raise ValueError("not a scalar")
            return str(value)
        if conversion == "bool":
            if not isinstance(value, bool):
                raise ValueError("not a boolean")
            return value
        if conversion == "unix_time":
            return _rfc3339(datetime.fromtimestamp(float(_integer_or_float(value)), UTC))
    except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
        raise MappingError(f"{target}: cannot convert {value!r} ({conversion}): {exc}") from None
    raise MappingError(f"{target}: unknown conversion {conversion!r}")


def _integer_or_float(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("not a number")
    return float(value) if isinstance(value, str) else value


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    number = Decimal(str(value))
    if number != number.to_integral_value():
        raise ValueError("not a whole number")
    return int(number)


def _money(value: Any) -> str:
    """A non-negative decimal string in plain notation ("1.25", "0.0001"), from a number
    or numeric string: money is never a float in an envelope (CONTRACT §2)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("not a number")
    number = Decimal(str(value).strip())
    if not number.is_finite() or number < 0:
        raise ValueError("not a finite non-negative amount")
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
