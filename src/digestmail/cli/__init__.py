"""The ``digestmail`` command. Each group of subcommands lives in its own module."""

from __future__ import annotations

import logging
import sys

import typer

from digestmail.cli import issue as issue_cli
from digestmail.cli.common import console, open_database
from digestmail.config import get_settings

app = typer.Typer(
    help="digestmail: write, render and deliver the digest to its subscribers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(issue_cli.app, name="issue")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    level = logging.DEBUG if verbose else getattr(logging, get_settings().log_level.upper(), 20)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def init() -> None:
    """Create the database, or upgrade it to the newest schema. Safe to run again."""
    from digestmail.migrate import upgrade

    db = open_database()
    before, after = upgrade(db.engine)
    if before == after:
        console.print(f"Database is up to date (schema {after}).")
    elif before is None:
        console.print(f"Created the database (schema {after}).")
    else:
        console.print(f"Upgraded the database from schema {before} to {after}.")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
