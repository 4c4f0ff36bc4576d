"""`environment_variables()` lists exactly the variables `load_settings()` reads."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from trustscore_stream.settings import environment_variables, load_settings


def names_in_source() -> set[str]:
    """The `TRUSTSCORE_…` string literals that load_settings passes as arguments."""
    tree = ast.parse(inspect.getsource(load_settings))
    return {
        arg.value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        for arg in call.args
        if isinstance(arg, ast.Constant)
        and isinstance(arg.value, str)
        and arg.value.startswith("TRUSTSCORE_")
    }


def test_lists_every_variable_load_settings_reads_once() -> None:
    names = environment_variables()
    assert len(names) == len(set(names))
    assert set(names) == names_in_source()
    for contract in (
        "TRUSTSCORE_BROKER",
        "TRUSTSCORE_DATABASE_URL",
        "TRUSTSCORE_DATA_DIR",
        "TRUSTSCORE_WEB_PORT",
        "TRUSTSCORE_JWT_SECRET",
        "TRUSTSCORE_INGEST_KEYS",
        "TRUSTSCORE_INGEST_RATE",
    ):
        assert contract in names


def test_every_variable_is_in_the_configuration_table() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    table = text[text.index("## Configuration") : text.index("\n## Running")]
    missing = [name for name in environment_variables() if f"`{name}`" not in table]
    assert not missing, f"document these in docs/operations.md, Configuration: {missing}"
