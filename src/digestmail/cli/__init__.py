"""The ``digestmail`` command. Each group of subcommands lives in its own module.

Every error ends as one line on stderr (``cli/errors.py``); ``--verbose`` adds the
traceback and debug logging.
"""

from __future__ import annotations

import logging

import typer

from digestmail.cli import errors
from digestmail.cli import events as events_cli
from digestmail.cli import issue as issue_cli
from digestmail.cli import issue_store as _issue_store  # noqa: F401  (issue add, issue list)
from digestmail.cli import schedule as schedule_cli  # also issue ready, issue unready
from digestmail.cli import scheduler as scheduler_cli
from digestmail.cli import send as send_cli
from digestmail.cli import serve as serve_cli
from digestmail.cli import staff as staff_cli
from digestmail.cli import stats as stats_cli
from digestmail.cli import subscribers as subscribers_cli
from digestmail.cli.common import console, database
from digestmail.config import get_settings

app = typer.Typer(
    cls=errors.DigestmailGroup,
    help="digestmail: write, render and deliver the digest to its subscribers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(issue_cli.app, name="issue")
app.command("send")(send_cli.send)
app.add_typer(send_cli.campaign_app, name="campaign")
app.add_typer(subscribers_cli.app, name="subscribers")
app.command("serve")(serve_cli.serve)
app.add_typer(events_cli.app, name="events")
app.command("stats")(stats_cli.stats_command)
app.add_typer(staff_cli.app, name="staff")
app.add_typer(schedule_cli.app, name="schedule")
app.command("scheduler")(scheduler_cli.scheduler)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log debug details; show the traceback of an error."
    ),
) -> None:
    errors.verbose = verbose  # first: a bad setting below is reported with it
    level = logging.DEBUG if verbose else getattr(logging, get_settings().log_level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every step at INFO; operators only need to hear about problems.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    # APScheduler logs every run of every job (the scheduler's sync runs every 2 s).
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


@app.command()
def init() -> None:
    """Create the database, or upgrade it to the newest schema. Safe to run again."""
    from digestmail.migrate import upgrade

    with database(ready=False) as db:
        before, after = upgrade(db.engine)
    if before == after:
        console.print(f"Database is up to date (schema {after}).")
    elif before is None:
        console.print(f"Created the database (schema {after}).")
    else:
        console.print(f"Upgraded the database from schema {before} to {after}.")


def main() -> None:
    app()
