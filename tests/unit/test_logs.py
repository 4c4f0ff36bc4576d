"""Structured logging: the line formats, components and their levels, redaction of secrets,
the settings behind them, and the bounded list of events behind a conflated delta."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from faust.utils.terminal.spinners import Spinner, SpinnerHandler

from trustscore_stream.db.notifications import DeliveryJob
from trustscore_stream.logs.components import COMPONENTS, component_of, logger_names
from trustscore_stream.logs.formatters import JsonFormatter, TextFormatter, rfc3339_utc
from trustscore_stream.logs.redaction import MASK, Redactor
from trustscore_stream.logs.setup import HANDLER, configure_logging, redactor_for
from trustscore_stream.notifications.records import data_of
from trustscore_stream.scoring.causes import MAX_CAUSES, add_cause
from trustscore_stream.scoring.publication import Published, delta_record, publish
from trustscore_stream.settings import SettingsError, load_settings
from trustscore_stream.worker_logging import undo_spinner_log_level

JWT = "jwt-secret-0123456789-abcdefghij"
SMTP = "smtp-pass-word-42"
INGEST = "ingest-key-secret-xyz"
DB_PASSWORD = "db-pass-987"
OPS = "ops-token-for-the-cli"
ENV = {
    "TRUSTSCORE_JWT_SECRET": JWT,
    "TRUSTSCORE_SMTP_PASSWORD": SMTP,
    "TRUSTSCORE_INGEST_KEYS": f"k1:{INGEST}",
    "TRUSTSCORE_DATABASE_URL": f"postgresql+psycopg://trust:{DB_PASSWORD}@db:5432/trust",
    "TRUSTSCORE_WORKER_ID": "w-test",
    "TRUSTSCORE_OPS_TOKEN": OPS,
}


def record(
    name: str = "trustscore_stream.agents.scoring",
    msg: str = "delta %s",
    args: tuple[Any, ...] = ("nft:eth:0xabc:1",),
    level: int = logging.DEBUG,
    extra: dict[str, Any] | None = None,
    exc: bool = False,
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"failed with {JWT}")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    rec.created = 1795342503.12  # 2026-11-22T10:15:03.120Z
    for key, value in (extra or {}).items():
        setattr(rec, key, value)
    return rec


# -- formats -------------------------------------------------------------------------------


def test_json_line_has_the_required_fields_and_the_extras() -> None:
    line = JsonFormatter("host:6066").format(
        record(extra={"event_id": "e1", "event_ids": ["e0", "e1"], "stage": "delta"})
    )
    data = orjson.loads(line)
    assert data == {
        "timestamp": "2026-11-22T10:15:03.120Z",
        "level": "DEBUG",
        "component": "scoring",
        "worker": "host:6066",
        "logger": "trustscore_stream.agents.scoring",
        "message": "delta nft:eth:0xabc:1",
        "event_id": "e1",
        "event_ids": ["e0", "e1"],
        "stage": "delta",
    }
    assert "\n" not in line


def test_json_line_of_an_exception_and_of_odd_arguments() -> None:
    data = orjson.loads(
        JsonFormatter("w").format(
            record(name="faust.worker", extra={"raw": b"\xff", "tp": {1, 2}}, exc=True)
        )
    )
    assert data["component"] == "faust"
    assert "RuntimeError" in data["exc_info"] and "Traceback" in data["exc_info"]
    # What orjson cannot serialise arrives as text, never as a failed line.
    assert isinstance(data["raw"], str) and data["tp"] == "{1, 2}"


def test_text_line_is_readable_and_carries_the_extras() -> None:
    line = TextFormatter("host:6066").format(
        record(level=logging.INFO, extra={"event_id": "e1", "stage": "score"})
    )
    assert line == (
        "2026-11-22T10:15:03.120Z INFO scoring [host:6066] delta nft:eth:0xabc:1 "
        "event_id=e1 stage=score"
    )


def test_rfc3339_utc_has_milliseconds_and_z() -> None:
    assert rfc3339_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rfc3339_utc(1795342503.9999))


# -- components and levels -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "component"),
    [
        ("trustscore_stream.agents.scoring", "scoring"),
        ("trustscore_stream.agents.ingest", "ingest"),
        ("trustscore_stream.notifications.content", "notify"),
        ("trustscore_stream.notifications.channels", "delivery"),  # longest prefix wins
        ("trustscore_stream.web.stream", "live"),
        ("trustscore_stream.web.scores", "web"),
        ("trustscore_stream.web.ops", "ops"),
        ("trustscore_stream.output", "app"),
        ("faust.transport.drivers.aiokafka", "faust"),
        ("aiokafka.consumer.group_coordinator", "aiokafka"),
        ("mode.redirect", "mode"),
        ("alembic.runtime.migration", "alembic"),
        ("trustscore_streamx", "trustscore_streamx"),  # not a child of our package
    ],
)
def test_component_of_a_logger(name: str, component: str) -> None:
    assert component_of(name) == component


@pytest.fixture
def clean_logging() -> Iterator[logging.Logger]:
    """Restore the root logger and every component logger after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logger_names()}
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_levels_per_component(clean_logging: logging.Logger) -> None:
    settings = load_settings(
        {"TRUSTSCORE_LOG_LEVEL": "warning", "TRUSTSCORE_LOG_LEVELS": "scoring=DEBUG,notify=info"}
    )
    configure_logging(settings)

    def enabled(name: str, level: int) -> bool:
        return logging.getLogger(name).isEnabledFor(level)

    assert enabled("trustscore_stream.agents.scoring", logging.DEBUG)
    assert enabled("trustscore_stream.scoring.model", logging.DEBUG)
    assert enabled("trustscore_stream.agents.notify", logging.INFO)
    assert not enabled("trustscore_stream.agents.notify", logging.DEBUG)
    # Delivery is a child package of notify's but its own component: the default applies.
    assert not enabled("trustscore_stream.notifications.channels", logging.INFO)
    assert not enabled("trustscore_stream.agents.ingest", logging.INFO)
    assert not enabled("aiokafka.consumer", logging.INFO)
    assert enabled("faust.worker", logging.WARNING)
    assert clean_logging.level == logging.WARNING
    assert [h.get_name() for h in clean_logging.handlers] == [HANDLER]


def test_the_configured_handler_writes_json_through_the_redactor(
    clean_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(load_settings({**ENV, "TRUSTSCORE_LOG_LEVELS": "ingest=DEBUG"}))
    log = logging.getLogger("trustscore_stream.agents.ingest")
    log.debug("event accepted", extra={"stage": "ingest", "event_id": "e-42"})
    log.info("started with secret %s", JWT)
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event_id"] == "e-42" and lines[0]["worker"] == "w-test"
    assert lines[1]["message"] == f"started with secret {MASK}"


def test_text_format_by_setting(
    clean_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(load_settings({"TRUSTSCORE_LOG_FORMAT": "text"}))
    logging.getLogger("trustscore_stream.cli").warning("hello")
    assert re.search(r"Z WARNING cli \[.+:6066\] hello$", capsys.readouterr().err.strip())


def test_spinner_undo_restores_the_configured_levels(clean_logging: logging.Logger) -> None:
    configure_logging(load_settings({"TRUSTSCORE_LOG_LEVEL": "INFO"}))
    # What Faust's worker does at `-l warn`: our handler to WARN, a spinner, root to DEBUG.
    ours = clean_logging.handlers[0]
    ours.setLevel(logging.WARNING)
    clean_logging.addHandler(SpinnerHandler(Spinner(file=io.StringIO()), level=logging.DEBUG))
    clean_logging.setLevel(logging.DEBUG)

    import asyncio

    asyncio.run(undo_spinner_log_level(logging.INFO))

    assert clean_logging.handlers == [ours] and ours.level == logging.NOTSET
    assert clean_logging.level == logging.INFO
    assert not logging.getLogger("aiokafka.producer").isEnabledFor(logging.DEBUG)


# -- settings ------------------------------------------------------------------------------


def test_logging_settings_defaults_and_validation() -> None:
    settings = load_settings({"TRUSTSCORE_WEB_PORT": "7001"})
    assert settings.log_level == "INFO" and settings.log_levels == {}
    assert settings.log_format is None
    assert settings.worker_id.endswith(":7001")
    parsed = load_settings(
        {
            "TRUSTSCORE_LOG_LEVEL": "warn",
            "TRUSTSCORE_LOG_LEVELS": " scoring=debug , Ingest=ERROR ",
            "TRUSTSCORE_LOG_FORMAT": "TEXT",
            "TRUSTSCORE_WORKER_ID": "w7",
        }
    )
    assert parsed.log_level == "WARNING"
    assert parsed.log_levels == {"scoring": "DEBUG", "ingest": "ERROR"}
    assert parsed.log_format == "text" and parsed.worker_id == "w7"
    for env, message in (
        ({"TRUSTSCORE_LOG_LEVEL": "verbose"}, "TRUSTSCORE_LOG_LEVEL must be one of"),
        ({"TRUSTSCORE_LOG_LEVELS": "scorer=DEBUG"}, "components ingest, route"),
        ({"TRUSTSCORE_LOG_LEVELS": "scoring"}, "component=LEVEL"),
        ({"TRUSTSCORE_LOG_LEVELS": "scoring=LOUD"}, "TRUSTSCORE_LOG_LEVELS (scoring)"),
        ({"TRUSTSCORE_LOG_FORMAT": "xml"}, "json or text"),
    ):
        with pytest.raises(SettingsError, match=re.escape(message)):
            load_settings(env)
    assert set(COMPONENTS) >= {"ingest", "route", "scoring", "notify", "delivery", "faust"}


# -- redaction -----------------------------------------------------------------------------


def test_configured_secrets_are_masked_in_json_and_text() -> None:
    redactor = redactor_for(load_settings(ENV))
    message = f"jwt {JWT} smtp {SMTP} key {INGEST} ops {OPS} url {ENV['TRUSTSCORE_DATABASE_URL']}"
    for formatter in (JsonFormatter("w", redactor), TextFormatter("w", redactor)):
        line = formatter.format(
            record(msg=message, args=(), extra={"config": {"nested": [f"x{SMTP}y"]}}, exc=True)
        )
        for secret in (JWT, SMTP, INGEST, OPS, DB_PASSWORD):
            assert secret not in line, (formatter, line)
        assert "postgresql+psycopg://trust:***@db:5432/trust" in line


def test_a_secret_with_json_escaped_characters_is_masked() -> None:
    secret = 'pa"ss\\word'
    line = JsonFormatter("w", Redactor([secret])).format(record(msg=f"x {secret} y", args=()))
    assert orjson.loads(line)["message"] == f"x {MASK} y"


def test_secrets_found_by_shape() -> None:
    redact = Redactor()
    job = DeliveryJob("d1", "webhook", "https://h/x", 0, {"id": "n1"}, "ab" * 32, None)
    assert "ab" * 32 not in redact(repr(job))
    cases = {
        "Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig": "Authorization: Bearer ***",
        "connect to https://user:hunter22@example.org/x": "connect to https://user:***@example.org/x",
        'config {"webhook_secret": "s3cr3t-value"}': 'config {"webhook_secret": "***"}',
        "smtp_password=hunter22 retry": "smtp_password=*** retry",
        "access_token: abc123": "access_token: ***",
        "api_key='k-1'": "api_key='***'",
        "secret=None": "secret=None",
    }
    for raw, expected in cases.items():
        assert redact(raw) == expected
    # In a JSON line the quotes around a dict's value are escaped.
    line = JsonFormatter("w").format(record(msg="%s", args=({"webhook_secret": "zz-top-99"},)))
    assert "zz-top-99" not in line and orjson.loads(line)


def test_ordinary_fields_are_not_mistaken_for_secrets() -> None:
    redact = Redactor(["abc"])  # too short to mask safely
    text = (
        'token_id=4021 {"token_id": "4021"} tx 0x9f3c abc tokens: 3 '
        "secrets are masked; the password field"
    )
    assert redact(text) == text


# -- the events behind a delta -------------------------------------------------------------


def test_causes_are_bounded_and_say_when_a_change_is_conflated() -> None:
    causes: dict[str, list[str]] = {}
    assert add_cause(causes, "k", "e0") is False
    assert add_cause(causes, "k", "e0") is True  # the same event twice counts once
    assert causes["k"] == ["e0"]
    for i in range(1, 25):
        assert add_cause(causes, "k", f"e{i}") is True
    assert causes["k"] == [f"e{i}" for i in range(25 - MAX_CAUSES, 25)]


@dataclass
class _Factor:
    value: float
    weight: float = 0.1
    evidence: tuple[str, ...] = ()


@dataclass
class _Result:
    score: float
    level: str
    factors: dict[str, _Factor]
    model_version: str = "1"


def test_a_conflated_delta_names_its_events_and_a_single_one_does_not() -> None:
    result: Any = _Result(70.0, "moderate", {"liquidity": _Factor(70.0)})
    at = datetime(2026, 11, 22, 10, 15, 3, tzinfo=UTC)
    _, single = publish("nft:eth:0xabc:1", Published(), result, "e1", at, 0.5, ["e1"])
    assert "cause_event_ids" not in delta_record(single)
    _, several = publish("nft:eth:0xabc:1", Published(), result, "e3", at, 0.5, ["e1", "e3"])
    record_ = delta_record(several)
    assert record_["cause_event_id"] == "e3" and record_["cause_event_ids"] == ["e1", "e3"]
    assert data_of({}, "e3", 2, ["e1", "e3"])["cause_event_ids"] == ["e1", "e3"]
    assert "cause_event_ids" not in data_of({}, "e3", 2, ["e3"])
