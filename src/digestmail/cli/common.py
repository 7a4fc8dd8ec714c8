"""What every command needs: the consoles, the database, and one way to fail."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from digestmail.db import Database

    # Made when first used (``__getattr__``): rich takes 40 ms to load, which
    # ``issue check`` and ``--help`` do without.
    console: Console
    err_console: Console

# C0 and C1 control characters other than newline and tab: a terminal obeys them
# (colours, titles, hyperlinks, clearing the screen), so stored text never reaches it raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character written out (``\\x1b``), not obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _data_console(**kwargs: Any) -> Console:
    """A console that prints data as it is.

    What it prints comes from the public (a subscriber named ``[/bold]`` or
    ``[link=…]``, an issue title) as often as from us, so nothing is read as rich
    markup, emoji codes or highlighting, and control characters are shown, not sent to
    the terminal. Table cells go through ``render_str`` too.
    """
    from rich.console import Console
    from rich.text import Text

    class DataConsole(Console):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

        def render_str(self, text: str, **kwargs: Any) -> Text:
            return super().render_str(visible(text), **kwargs)

    return DataConsole(**kwargs)


_CONSOLES: dict[str, dict[str, Any]] = {
    "console": {},
    "err_console": {"stderr": True, "soft_wrap": True},
}


def __getattr__(name: str) -> Any:
    if name not in _CONSOLES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = globals()[name] = _data_console(**_CONSOLES[name])
    return made


def _console(name: str) -> Console:
    """``console`` or ``err_console`` from inside this module (where ``__getattr__`` is
    not consulted)."""
    made: Console = globals().get(name) or __getattr__(name)
    return made


F = TypeVar("F", bound=Callable[..., Any])
_LIGHT = "digestmail_light_settings"


def light_settings(command: F) -> F:
    """Mark a command that reads ``config.get_light_settings()`` only, never
    ``get_settings()``: ``digestmail`` then starts it without reading every setting,
    which loads pydantic (0.15 s), and a bad value of a setting it does not read is not
    reported."""
    setattr(command, _LIGHT, True)
    return command


def reads_light_settings(command: Any) -> bool:
    """Whether a command (its function, or the command made of it) is marked
    ``light_settings``."""
    return bool(getattr(getattr(command, "callback", command), _LIGHT, False))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr as it is and return the exit to raise.

    ``raise fail(...)``: the one way a command gives up, so that every refusal looks
    the same and nothing typed by the public is read as markup.
    """
    _console("err_console").print(message)
    return typer.Exit(code)


@contextmanager
def database(*, ready: bool = True) -> Iterator[Database]:
    """The database the settings name, disposed of when the command is done.

    ``ready``: first make sure it has this version's schema (``DatabaseNotReady``
    otherwise, which says to run ``init``); only ``init`` itself does without.
    """
    # Imported here: the database (SQLAlchemy, Alembic) is what most commands load, and
    # only when they run (see ``cli/__init__``).
    from digestmail.config import get_settings
    from digestmail.db import Database
    from digestmail.migrate import check_ready

    db = Database(get_settings().database_url)
    try:
        if ready:
            check_ready(db.engine)
        yield db
    finally:
        db.dispose()
