"""What every command needs: the consoles, the database, and one way to fail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from digestmail.config import get_settings
from digestmail.db import Database
from digestmail.migrate import check_ready

# C0 and C1 control characters other than newline and tab: a terminal obeys them
# (colours, titles, hyperlinks, clearing the screen), so stored text never reaches it raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character written out (``\\x1b``), not obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class DataConsole(Console):
    """A console that prints data as it is.

    What it prints comes from the public (a subscriber named ``[/bold]`` or
    ``[link=…]``, an issue title) as often as from us, so nothing is read as rich
    markup, emoji codes or highlighting, and control characters are shown, not sent to
    the terminal. Table cells go through ``render_str`` too.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)


console = DataConsole()
err_console = DataConsole(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr as it is and return the exit to raise.

    ``raise fail(...)``: the one way a command gives up, so that every refusal looks
    the same and nothing typed by the public is read as markup.
    """
    err_console.print(message)
    return typer.Exit(code)


@contextmanager
def database(*, ready: bool = True) -> Iterator[Database]:
    """The database the settings name, disposed of when the command is done.

    ``ready``: first make sure it has this version's schema (``DatabaseNotReady``
    otherwise, which says to run ``init``); only ``init`` itself does without.
    """
    db = Database(get_settings().database_url)
    try:
        if ready:
            check_ready(db.engine)
        yield db
    finally:
        db.dispose()
