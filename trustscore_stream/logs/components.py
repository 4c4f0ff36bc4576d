"""Which component a logger belongs to, by its name.

A component is what an operator turns up or down (`TRUSTSCORE_LOG_LEVELS=scoring=DEBUG`) and
what every log line names. Each is a set of logger-name prefixes; the longest matching prefix
wins, so `trustscore_stream.notifications.channels` is delivery although its parent package
is notify.
"""

from __future__ import annotations

COMPONENTS: dict[str, tuple[str, ...]] = {
    "ingest": (
        "trustscore_stream.agents.ingest",
        "trustscore_stream.web.ingest",
        "trustscore_stream.events",
        "trustscore_stream.ingest_auth",
    ),
    "route": ("trustscore_stream.agents.route", "trustscore_stream.tables.dedup"),
    "lanes": (
        "trustscore_stream.agents.lanes",
        "trustscore_stream.agents.batches",
        "trustscore_stream.agents.corrupt_records",
    ),
    "scoring": (
        "trustscore_stream.agents.scoring",
        "trustscore_stream.agents.links",
        "trustscore_stream.agents.watch",
        "trustscore_stream.scoring",
        "trustscore_stream.tables",
    ),
    "history": ("trustscore_stream.agents.history", "trustscore_stream.db"),
    "notify": ("trustscore_stream.agents.notify", "trustscore_stream.notifications"),
    "delivery": ("trustscore_stream.agents.deliver", "trustscore_stream.notifications.channels"),
    "live": ("trustscore_stream.live", "trustscore_stream.web.stream"),
    "web": ("trustscore_stream.web",),
    "sources": ("trustscore_stream.sources",),
    "ops": ("trustscore_stream.ops", "trustscore_stream.web.ops"),
    "cli": ("trustscore_stream.cli", "trustscore_stream.processes"),
    "broker": ("trustscore_stream.embedded",),
    "app": ("trustscore_stream",),  # the rest of ours: app.py, output.py, fetch_wait.py…
    "faust": ("faust",),
    "mode": ("mode",),
    "aiokafka": ("aiokafka",),
}

# (prefix, component), longest prefix first.
_PREFIXES = sorted(
    ((prefix, name) for name, prefixes in COMPONENTS.items() for prefix in prefixes),
    key=lambda pair: -len(pair[0]),
)


def component_of(logger_name: str) -> str:
    """The component of a logger (an unknown library: its top-level package name)."""
    for prefix, name in _PREFIXES:
        if logger_name == prefix or logger_name.startswith(prefix + "."):
            return name
    return logger_name.split(".", 1)[0] or "root"


def logger_names() -> list[str]:
    """Every prefix of every component, shortest first (parents configured before children)."""
    return [prefix for prefix, _ in reversed(_PREFIXES)]
