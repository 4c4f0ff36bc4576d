"""Pytest plugin: one broker for the whole test session.

Enable with ``pytest_plugins = ["tests.broker"]`` in ``tests/conftest.py`` (or ``-p tests.broker``).
Set ``TRUSTSCORE_TEST_BROKER=kafka://host:port`` to use an external broker instead of starting
the embedded one. The broker is shared, so name topics with ``unique_topic_prefix``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from trustscore_stream.embedded import BrokerEndpoint, EmbeddedBroker, ExternalBroker

BROKER_ENV = "TRUSTSCORE_TEST_BROKER"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerEndpoint]:
    """An :class:`EmbeddedBroker` (started once per session), or the external broker."""
    external = os.environ.get(BROKER_ENV)
    if external:
        yield ExternalBroker(external)
        return
    embedded = EmbeddedBroker(log_dir=tmp_path_factory.mktemp("tansu"))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def unique_topic_prefix() -> str:
    """A short random prefix such as ``t3f9a1c2b-``, so tests don't collide on the broker."""
    return f"t{secrets.token_hex(4)}-"
