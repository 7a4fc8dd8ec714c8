"""Create or upgrade the database schema with Alembic (``digestmail init``).

Every command checks first that the database has this version's schema
(``check_ready``). When it has, the answer comes from two small reads, the
``alembic_version`` row and the ``revision``/``down_revision`` lines of the migration
files, without loading Alembic (0.1–0.2 s, more than many commands take in all);
anything else (no schema, an older or an unknown one) is Alembic's to decide.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"'](?P<id>[^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(?P<value>[^\n]*)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


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
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (before, after). A no-op when current."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = head_revision()
    with engine.connect() as conn:
        before = _current(conn)
    if before != head:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    assert head is not None
    return before, head


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


@lru_cache(maxsize=1)
def head_from_files() -> str | None:
    """The newest revision as the migration files name it, read as text: the one
    revision no other file gives as its ``down_revision``. None when the files do not
    say exactly one (Alembic then decides); a test checks it agrees with Alembic."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision["id"])
        downs.update(_QUOTED.findall(down["value"]))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def _recorded(conn: Connection) -> list[str] | None:
    """The ``alembic_version`` rows, or None when there is no such table."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return [str(v) for v in conn.execute(text("SELECT version_num FROM alembic_version")).scalars()]


def check_ready(engine: Engine) -> None:
    """Raise ``DatabaseNotReady`` unless the schema is this version's; creates nothing.

    A SQLite file that does not exist yet is not created by asking (connecting would).
    Connection failures surface as the driver's own ``OperationalError``.
    """
    url = engine.url
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).exists():
        raise DatabaseNotReady(None, head_from_files() or head_revision())
    with engine.connect() as conn:
        recorded = _recorded(conn)
        fast = head_from_files()
        if fast is not None and recorded == [fast]:
            return
        current = _current(conn)
    head = head_revision()
    if current != head:
        known = current is None or current in {s.revision for s in _scripts().walk_revisions()}
        raise DatabaseNotReady(current, head, known=known)
