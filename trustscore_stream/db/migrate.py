"""Run the packaged Alembic migrations without an alembic.ini.

From code: `upgrade(url)`. From a shell (see docs/database.md):
`python -m trustscore_stream.db.migrate upgrade URL`, `... current URL` and
`... revision URL --rev-id 0002 -m "add x" --autogenerate`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic Config for the packaged migrations, targeting `url`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Readable, sortable file names: versions/0002_add_x.py for --rev-id 0002.
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    # Config values go through configparser interpolation: a literal % must be doubled
    # (URL-encoded passwords and options such as "-csearch_path%3D..." contain them).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (default: latest). Safe to repeat."""
    command.upgrade(alembic_config(url), revision)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trustscore_stream.db.migrate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("url")
    up.add_argument("revision", nargs="?", default="head")
    cur = sub.add_parser("current", help="show the database's revision")
    cur.add_argument("url")
    rev = sub.add_parser("revision", help="create a new migration file")
    rev.add_argument("url", help="a database at head, compared against the models")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--rev-id", required=True, help="next sequence number, e.g. 0002")
    rev.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)

    cfg = alembic_config(args.url)
    if args.cmd == "upgrade":
        command.upgrade(cfg, args.revision)
    elif args.cmd == "current":
        command.current(cfg, verbose=True)
    else:
        # Generated files come out lint-clean (ruff is a dev dependency, as is this command).
        hooks = "post_write_hooks"
        cfg.set_section_option(hooks, "hooks", "ruff_fix, ruff_format")
        for name, options in (("ruff_fix", "check --fix"), ("ruff_format", "format")):
            cfg.set_section_option(hooks, f"{name}.type", "module")
            cfg.set_section_option(hooks, f"{name}.module", "ruff")
            cfg.set_section_option(hooks, f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME")
        command.revision(
            cfg, message=args.message, rev_id=args.rev_id, autogenerate=args.autogenerate
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
