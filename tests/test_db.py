from __future__ import annotations

import sqlalchemy as sa

from digestmail.db import Database
from digestmail.migrate import upgrade
from digestmail.models import Base


def test_upgrade_is_a_no_op_when_current(database: Database) -> None:
    before, after = upgrade(database.engine)
    assert before == after
    tables = set(sa.inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_migrations_match_the_models(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models changed without a migration: {diff}"


def test_sqlite_pragmas(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.dispose()
