"""What every command needs: the console, the settings and the database."""

from __future__ import annotations

from rich.console import Console

from digestmail.config import get_settings
from digestmail.db import Database

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def open_database() -> Database:
    return Database(get_settings().database_url)
