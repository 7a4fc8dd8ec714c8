"""The ``digestmail`` command. Each group of subcommands lives in its own module.

Every error ends as one line on stderr (``cli/errors.py``); ``--verbose`` adds the
traceback and debug logging.

Commands start at once: a command imports only what it uses. ``digestmail --help``
loads none of the command modules, and ``digestmail issue check`` loads ``cli/issue.py``
only, never SQLAlchemy, FastAPI, premailer or the SendGrid client, nor pydantic: before
a command runs every setting is read (and checked), except for a command marked
``common.light_settings``, which reads ``config.get_light_settings()`` only
(``tests/test_cli_startup.py`` checks it; ``bench/cli.py`` times it). To add a command
or a group of commands:

1. write it in a module of its own under ``cli/`` (a ``typer.Typer`` for a group, or a
   function for a single command), importing at the top only what every one of its
   commands needs; a library only some command needs (the database, the web app, a
   mail client, the renderer) is imported inside that command's function;
2. register it in ``COMMANDS`` below: the module, the name of the Typer or function in
   it, and the one line ``digestmail --help`` shows for it (the same as its own help;
   a test compares them). The module is imported only when the command runs or shows
   its own help.

``python -X importtime -m digestmail.cli COMMAND …`` shows what a command imports.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand

from digestmail.cli import common, errors


@dataclass(frozen=True)
class Entry:
    """A command (or group) loaded on demand."""

    module: str
    attribute: str  # a ``typer.Typer`` (a group) or a command function
    help: str  # its one line in ``digestmail --help``

    def load(self, name: str) -> Any:
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)
            group.name = name
            return group
        single = typer.Typer()
        single.command(name)(target)
        return typer.main.get_command(single)


COMMANDS: dict[str, Entry] = {
    "issue": Entry(
        "digestmail.cli.issue_store", "app", "Work with issues: import, check, render, add, list."
    ),
    "send": Entry(
        "digestmail.cli.send",
        "send",
        "Send an issue to every active subscriber now (or a test to a few addresses).",
    ),
    "campaign": Entry(
        "digestmail.cli.send",
        "campaign_app",
        "Campaigns (one sending of one issue): list, status, pause, resume, cancel.",
    ),
    "subscribers": Entry(
        "digestmail.cli.subscribers",
        "app",
        "Manage subscribers: add, import, export, remove, list.",
    ),
    "serve": Entry(
        "digestmail.cli.serve",
        "serve",
        "Serve the public pages and hooks (behind a TLS reverse proxy in production).",
    ),
    "events": Entry(
        "digestmail.cli.events",
        "app",
        "Bounces and complaints: fetch bounce mail, reconcile with SendGrid.",
    ),
    "stats": Entry(
        "digestmail.cli.stats",
        "stats_command",
        "The last campaigns side by side: delivered, bounces, complaints, opens, clicks.",
    ),
    "staff": Entry(
        "digestmail.cli.staff",
        "app",
        "Staff accounts for the admin in the browser: add, list, remove, password.",
    ),
    "schedule": Entry(
        "digestmail.cli.schedule",
        "app",
        "When issues go out. `digestmail schedule SLUG --at TIME [--tz ZONE]` sends one issue "
        "at a set time; `schedule cadence` sends the oldest ready issue on a regular rhythm. "
        "The scheduler (`digestmail scheduler`, or `digestmail serve`) does the sending.",
    ),
    "scheduler": Entry(
        "digestmail.cli.scheduler",
        "scheduler",
        "Run the scheduler: scheduled sends, campaigns whose sender died, reminders to staff.",
    ),
}


class _Root(errors.DigestmailGroup):
    """The root group: ``COMMANDS`` are listed from the registry and loaded when used."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        entry = COMMANDS.get(cmd_name)
        if found is not None or entry is None:
            return found
        if self._listing:
            # Only a line in the root's help: no need to import the module for that.
            return TyperCommand(cmd_name, help=entry.help)
        command = entry.load(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        # Called just before the root callback: tell it whether the command line runs
        # a command that reads only the light settings.
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_LIGHT] = _runs_light(command, rest)
        return name, command, rest

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


_LIGHT = "digestmail.light_settings"


def _runs_light(command: Any, args: list[str]) -> bool:
    """Whether ``args`` (what follows ``command`` on the command line) run a command
    marked ``common.light_settings``: a group's first argument names its command; an
    option first, or a name the group does not list, means every setting is read."""
    while command is not None and hasattr(command, "commands"):
        if not args or args[0].startswith("-"):
            return False
        command, args = command.commands.get(args[0]), args[1:]
    return command is not None and common.reads_light_settings(command)


app = typer.Typer(
    cls=_Root,
    help="digestmail: write, render and deliver the digest to its subscribers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log debug details; show the traceback of an error."
    ),
) -> None:
    from digestmail import config

    errors.verbose = verbose  # first: a bad setting below is reported with it
    # Every setting is read (and so checked) here, before the command runs, unless the
    # command reads only the light ones (``common.light_settings``).
    read = config.get_light_settings if ctx.meta.get(_LIGHT) else config.get_settings
    level = logging.DEBUG if verbose else getattr(logging, read().log_level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every step at INFO; operators only need to hear about problems.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    # APScheduler logs every run of every job (the scheduler's sync runs every 2 s).
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    _loaded()


@app.command()
def init() -> None:
    """Create the database, or upgrade it to the newest schema. Safe to run again."""
    from digestmail.migrate import upgrade

    with common.database(ready=False) as db:
        before, after = upgrade(db.engine)
    if before == after:
        common.console.print(f"Database is up to date (schema {after}).")
    elif before is None:
        common.console.print(f"Created the database (schema {after}).")
    else:
        common.console.print(f"Upgraded the database from schema {before} to {after}.")


# Set by ``main``: the garbage collector is off until the command is loaded (``_loaded``).
_loading = False


def _loaded() -> None:
    """The command's modules are imported and every setting read: what was made so far
    (modules, classes, functions) lives as long as the process, so it is frozen out of
    the collector's way, and the collector runs again for what the command makes."""
    global _loading
    if _loading:
        _loading = False
        gc.freeze()
        gc.enable()


def main() -> None:
    global _loading
    # On the way out the interpreter's garbage collections walk every object still alive:
    # some 0.2 s after a command that loaded SQLAlchemy, as long as `digestmail send`
    # takes for 300 messages by SMTP. Frozen, those objects are only freed. Registered
    # last, it runs first: logging's flushes and closes still follow, needing no collection.
    atexit.register(gc.freeze)
    # While a command loads (SQLAlchemy and the models, pydantic and the settings), the
    # collections walk every object made so far, again and again, and free nearly
    # nothing: some 70 ms of CPU before `digestmail send` sends anything. Off until the
    # root callback has run (``_loaded``), just before the command does.
    gc.disable()
    _loading = True
    app()
