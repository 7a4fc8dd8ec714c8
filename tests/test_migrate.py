"""Schema checks: the quick reading of the migration files agrees with Alembic."""

from __future__ import annotations

from digestmail.migrate import head_from_files, head_revision


def test_the_head_read_from_the_files_is_alembics() -> None:
    # check_ready answers "ready" from it without loading Alembic: it must never differ.
    assert head_from_files() == head_revision()
