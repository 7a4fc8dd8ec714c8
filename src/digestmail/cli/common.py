"""What every command needs: the consoles, the database, and one way to fail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from digestmail.config import get_settings
from digestmail.db import Database

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr as it is and return the exit to raise.

    ``raise fail(...)``: the one way a command gives up, so that every refusal looks
    the same and nothing typed by the public is read as markup.
    """
    err_console.print(message, markup=False, emoji=False)
    return typer.Exit(code)


@contextmanager
def database() -> Iterator[Database]:
    """The database the settings name, disposed of when the command is done."""
    db = Database(get_settings().database_url)
    try:
        yield db
    finally:
        db.dispose()
