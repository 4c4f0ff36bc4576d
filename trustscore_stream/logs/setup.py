"""The logging configuration of a process, from its settings.

One handler on the root logger (stderr, JSON or text), every component's loggers at their
level (TRUSTSCORE_LOG_LEVELS, else TRUSTSCORE_LOG_LEVEL), and the redactor built from the
secrets the settings hold. The worker hands the same configuration to Faust as its
`logging_config`, so Faust's, mode's and aiokafka's own lines come out the same way;
`configure_logging` applies it directly (the CLI, and the worker's app module before
Faust's worker takes over).
"""

from __future__ import annotations

import logging
import logging.config
import socket
from typing import Any

from trustscore_stream.logs.components import COMPONENTS, component_of, logger_names
from trustscore_stream.logs.formatters import JsonFormatter, TextFormatter
from trustscore_stream.logs.redaction import Redactor, url_password
from trustscore_stream.settings import Settings

HANDLER = "trustscore"  # the name of our root handler (worker_logging.py finds it by it)


def redactor_for(settings: Settings) -> Redactor:
    return Redactor(
        [
            settings.jwt_secret,
            settings.smtp_password,
            settings.ops_token,
            url_password(settings.database_url),
            *settings.ingest_keys.values(),
        ]
    )


def worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{settings.web_port}"


def component_levels(settings: Settings) -> dict[str, str]:
    """Every component's level: its own if configured, else the default."""
    return {name: settings.log_levels.get(name, settings.log_level) for name in COMPONENTS}


def logging_config(settings: Settings, default_format: str = "json") -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary (also Faust's `logging_config` setting)."""
    fmt = settings.log_format or default_format
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    levels = component_levels(settings)
    return {
        "version": 1,
        # Module loggers exist before Faust's worker applies this: never disable them.
        "disable_existing_loggers": False,
        "formatters": {
            "trustscore": {
                "()": formatter,
                # An object, not a list of strings: dictConfig would try to resolve a secret
                # that happens to look like `ext://…`.
                "redactor": redactor_for(settings),
                "worker": worker_id(settings),
            }
        },
        "handlers": {
            HANDLER: {
                "class": "logging.StreamHandler",
                "formatter": "trustscore",
                "stream": "ext://sys.stderr",
            }
        },
        # Every component's loggers get an explicit level, so a child prefix of another
        # component (notifications.channels under notifications) never inherits the wrong one.
        "loggers": {name: {"level": levels[component_of(name)]} for name in logger_names()},
        "root": {"level": settings.log_level, "handlers": [HANDLER]},
    }


def configure_logging(settings: Settings, default_format: str = "json") -> None:
    logging.config.dictConfig(logging_config(settings, default_format))
