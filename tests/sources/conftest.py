from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sources.anvil import Anvil


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    """One node per test module; each test deploys its own contracts on it."""
    node = Anvil(Path(tmp_path_factory.mktemp("anvil"))).start()
    try:
        yield node
    finally:
        node.stop()
