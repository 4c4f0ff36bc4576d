"""The scoring model is domain code: importing it must not pull in I/O or async machinery."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("faust", "mode", "aiohttp", "aiokafka", "sqlalchemy", "asyncio", "rocksdict", "socket")


def test_scoring_imports_no_io_or_async() -> None:
    code = (
        "import sys, trustscore_stream.scoring, trustscore_stream.scoring.links\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
