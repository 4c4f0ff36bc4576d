"""`sources.toml`: the pollers' configuration, parsed and checked up front (pure).

```toml
[[poll]]
name = "floors"                      # event_id prefix, metric label
url = "https://api.example/floors"
interval = 60                        # seconds between polls when all is well
timeout = 10                         # seconds per request
rate = 1.0                           # at most this many requests per second
backoff_base = 1.0                   # first retry delay after a failure (doubles, jittered)
backoff_max = 300.0
headers_from_env = { "X-API-Key" = "FLOORS_API_KEY" }  # secrets stay in the environment
type = "market_data"
source = "market"
items = "$.collections[*]"           # where the items are; "$" = the whole document
event_id = "$.id"                    # optional; default: a hash of the item
occurred_at = { path = "$.ts", as = "unix_time" }  # optional; default: the poll time

[poll.fields]
contract = "$.address"
"payload.floor_price" = { path = "$.floor", as = "money" }
"payload.currency" = "ETH"           # not starting with "$": a literal
"payload.holders" = { path = "$.holders", as = "int", optional = true }

[poll.anomaly]                       # market data only
field = "payload.floor_price"
factor = 100
window = 20
min_samples = 3
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from trustscore_stream.events.envelope import EVENT_TYPES
from trustscore_stream.settings import SettingsError
from trustscore_stream.sources.fieldpath import FieldPath, PathError
from trustscore_stream.sources.mapping import CONVERSIONS, Conversion, FieldRule, ItemMapping

SOURCES = ("chain", "marketplace", "fraud", "social", "market", "internal")


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    field: str
    factor: float = 100.0
    window: int = 20
    min_samples: int = 3
    confirm_after: int = 3


@dataclass(frozen=True, slots=True)
class PollSource:
    name: str
    url: str
    mapping: ItemMapping
    interval_s: float = 60.0
    timeout_s: float = 10.0
    rate: float = 1.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    headers: Mapping[str, str] = field(default_factory=dict)
    anomaly: AnomalyRule | None = None


def _rule(target: str, spec: Any, where: str) -> FieldRule:
    try:
        if isinstance(spec, str) and spec.startswith("$"):
            return FieldRule(target, path=FieldPath.parse(spec))
        if isinstance(spec, dict):
            unknown = set(spec) - {"path", "as", "optional", "value"}
            if unknown:
                raise SettingsError(f"{where}.{target}: unknown keys {sorted(unknown)}")
            conversion = spec.get("as", "keep")
            if conversion not in CONVERSIONS:
                raise SettingsError(f"{where}.{target}: `as` must be one of {CONVERSIONS}")
            if "value" in spec:
                return FieldRule(target, literal=spec["value"])
            return FieldRule(
                target,
                path=FieldPath.parse(str(spec["path"])),
                conversion=cast(Conversion, conversion),
                optional=bool(spec.get("optional", False)),
            )
        return FieldRule(target, literal=spec)
    except PathError as exc:
        raise SettingsError(f"{where}.{target}: {exc}") from None
    except KeyError:
        raise SettingsError(f"{where}.{target}: a table needs `path` or `value`") from None


def _number(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SettingsError(f"{where}.{key} must be a positive number, got {value!r}")
    return float(value)


def parse_poll_config(document: Mapping[str, Any], env: Mapping[str, str]) -> list[PollSource]:
    entries = document.get("poll")
    if not isinstance(entries, list) or not entries:
        raise SettingsError("the config needs at least one [[poll]] table")
    sources: list[PollSource] = []
    for position, entry in enumerate(entries):
        where = f"poll[{position}]"
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise SettingsError(f"{where}: `name` is required")
        where = f"poll {name!r}"
        if name in {s.name for s in sources}:
            raise SettingsError(f"{where}: duplicate name")
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SettingsError(f"{where}: `url` must be an http(s) URL")
        kind = entry.get("type")
        if kind not in EVENT_TYPES:
            raise SettingsError(f"{where}: `type` must be one of {', '.join(EVENT_TYPES)}")
        source = entry.get("source")
        if source not in SOURCES:
            raise SettingsError(f"{where}: `source` must be one of {', '.join(SOURCES)}")
        fields = entry.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise SettingsError(f"{where}: [poll.fields] is required")
        try:
            items = FieldPath.parse(str(entry.get("items", "$")))
        except PathError as exc:
            raise SettingsError(f"{where}.items: {exc}") from None
        mapping = ItemMapping(
            name=name,
            type=kind,
            source=source,
            items=items,
            fields=tuple(_rule(target, spec, where) for target, spec in fields.items()),
            event_id=_rule("event_id", entry["event_id"], where) if "event_id" in entry else None,
            occurred_at=(
                _rule("occurred_at", entry["occurred_at"], where)
                if "occurred_at" in entry
                else None
            ),
        )
        headers: dict[str, str] = {}
        for header, variable in (entry.get("headers_from_env") or {}).items():
            if variable not in env:
                raise SettingsError(f"{where}: header {header} needs env variable {variable}")
            headers[header] = env[variable]
        anomaly = None
        if "anomaly" in entry:
            table = entry["anomaly"]
            if kind != "market_data":
                raise SettingsError(f"{where}: [poll.anomaly] applies to market_data only")
            anomaly = AnomalyRule(
                field=str(table.get("field", "payload.floor_price")),
                factor=_number(table, "factor", 100.0, where),
                window=int(_number(table, "window", 20, where)),
                min_samples=int(_number(table, "min_samples", 3, where)),
                confirm_after=int(_number(table, "confirm_after", 3, where)),
            )
        sources.append(
            PollSource(
                name=name,
                url=url,
                mapping=mapping,
                interval_s=_number(entry, "interval", 60.0, where),
                timeout_s=_number(entry, "timeout", 10.0, where),
                rate=_number(entry, "rate", 1.0, where),
                backoff_base_s=_number(entry, "backoff_base", 1.0, where),
                backoff_max_s=_number(entry, "backoff_max", 300.0, where),
                headers=headers,
                anomaly=anomaly,
            )
        )
    return sources


def load_poll_config(path: Path, env: Mapping[str, str] | None = None) -> list[PollSource]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    return parse_poll_config(document, os.environ if env is None else env)
