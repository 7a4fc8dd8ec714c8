"""Create or upgrade the database schema with Alembic (``digestmail init``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseNotReady(Exception):
    """The database has no schema yet (``current`` is None), or not this version's."""

    def __init__(self, current: str | None, head: str, *, known: bool = True) -> None:
        state = "no schema" if current is None else f"schema {current}"
        super().__init__(f"the database has {state}; this version needs schema {head}")
        self.current = current
        self.head = head
        # False: the database's schema is one these migrations do not know (newer code
        # upgraded it), so upgrading cannot help.
        self.known = known


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (before, after). A no-op when current."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = head_revision()
    with engine.connect() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
    if before != head:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    assert head is not None
    return before, head


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def check_ready(engine: Engine) -> None:
    """Raise ``DatabaseNotReady`` unless the schema is this version's; creates nothing.

    A SQLite file that does not exist yet is not created by asking (connecting would).
    Connection failures surface as the driver's own ``OperationalError``.
    """
    head = head_revision()
    url = engine.url
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).exists():
        raise DatabaseNotReady(None, head)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        known = current is None or current in {s.revision for s in _scripts().walk_revisions()}
        raise DatabaseNotReady(current, head, known=known)
