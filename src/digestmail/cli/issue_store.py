"""``digestmail issue add``, ``issue list``, ``issue ready|unready``: stored issues.

Registered on the ``issue`` group of ``cli/issue.py``; ``cli/__init__`` loads the group
through this module, so that both halves are there. What only these two commands need
(the database, the renderer) is imported inside them: ``issue check`` stays quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from digestmail.cli import common
from digestmail.cli.common import database, fail
from digestmail.cli.issue import app

__all__ = ["app"]


@app.command("add")
def add(
    file: Path = typer.Argument(..., help="The issue source file (.md)."),
    ready: bool = typer.Option(False, "--ready", help="Mark it ready to send (else a draft)."),
) -> None:
    """Check, render and store an issue; prints its slug. A file with problems is refused."""
    from digestmail.config import get_settings
    from digestmail.content.source import IssueSourceError
    from digestmail.issues import IssueStoreError, add_issue

    with database() as db:
        try:
            issue = add_issue(db, get_settings(), file, ready=ready)
        except IssueSourceError as exc:
            raise fail(f"Not added. {exc}") from exc
        except IssueStoreError as exc:
            raise fail(f"Not added: {exc}") from exc
    typer.echo(issue.slug)


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The stored issues, newest first: slug, volume, title, date and state."""
    from rich.table import Table

    from digestmail.issues import list_issues

    with database() as db:
        issues = list_issues(db)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "slug": i.slug,
                        "volume": i.volume,
                        "title": i.title,
                        "date": i.issue_date.isoformat() if i.issue_date else None,
                        "status": i.status.value,
                        "sent_at": i.sent_at.isoformat() if i.sent_at else None,
                    }
                    for i in issues
                ],
                indent=2,
            )
        )
        return
    if not issues:
        common.console.print("No issues yet. Add one with `digestmail issue add FILE`.")
        return
    table = Table("Vol.", "Title", "Date", "State")
    # The slug is what staff copy into `send`: never cut it short.
    table.add_column("Slug", no_wrap=True, overflow="fold")
    for i in issues:
        table.add_row(
            i.volume,
            i.title,
            i.issue_date.isoformat() if i.issue_date else "",
            i.status.value,
            i.slug,
        )
    common.console.print(table)


@app.command("ready")
def ready(slug: str = typer.Argument(..., help="The issue's slug.")) -> None:
    """Mark an issue ready: a cadence sends the oldest ready issue."""
    from digestmail.cli.schedule import readiness  # scheduling, loaded when used

    readiness(slug, True)


@app.command("unready")
def unready(slug: str = typer.Argument(..., help="The issue's slug.")) -> None:
    """Make an issue a draft again: no cadence sends it, and its one-off send is skipped."""
    from digestmail.cli.schedule import readiness

    readiness(slug, False)
