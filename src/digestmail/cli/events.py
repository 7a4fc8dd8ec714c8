"""``digestmail events …``: fetch bounce messages, reconcile with SendGrid's lists."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from digestmail import bounces
from digestmail.cli.common import console, database, fail
from digestmail.config import get_settings
from digestmail.events import reconcile as rc

app = typer.Typer(
    help="Bounces and complaints: fetch bounce mail, reconcile with SendGrid.",
    no_args_is_help=True,
)


@app.command()
def fetch() -> None:
    """Read the bounce mailbox (DIGESTMAIL_BOUNCE_IMAP_URL) now, as the scheduler does."""
    settings = get_settings()
    with database() as db:
        try:
            report = bounces.fetch_bounces(db, settings)
        except bounces.FetchError as exc:
            raise fail(
                f"Could not read the bounce mailbox at {exc.host}: {exc.reason}. Nothing was "
                "moved; check DIGESTMAIL_BOUNCE_IMAP_URL (user, password, folder)."
            ) from None
    if settings.bounce_imap_url is None:
        console.print(
            "No bounce mailbox is configured (DIGESTMAIL_BOUNCE_IMAP_URL); nothing to fetch."
        )
        return
    console.print(
        f"Read {report.read} message(s), {report.bounces} of them bounce reports; "
        f"moved to the {bounces.PROCESSED_FOLDER} folder."
    )
    _print_changes([(c.subscriber_id, c.status.value) for c in report.changes])
    if report.failed:
        raise fail(
            f"{report.failed} message(s) could not be read and stay in the mailbox for the "
            "next fetch (the log says why)."
        )


def _print_changes(changes: list[tuple[int, str]]) -> None:
    if not changes:
        console.print("No subscriber changed status.")
        return
    for subscriber_id, status in changes:
        console.print(f"Subscriber {subscriber_id} is now {status}.")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--since {value!r}: expected a date such as 2025-01-31", 2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def reconcile(
    since: str | None = typer.Option(
        None, "--since", help="Only entries from this date on (YYYY-MM-DD); default: all."
    ),
) -> None:
    """Apply SendGrid's suppression lists (bounces, blocks, spam reports, invalid
    emails, unsubscribes) to the list; prints what changed. Safe to run again."""
    start = _since(since)
    with database() as db:
        try:
            report = rc.reconcile(db, get_settings(), since=start)
        except rc.NoApiKey:
            raise fail("reconcile reads SendGrid's lists: set SENDGRID_API_KEY first.") from None
        except rc.ReconcileError as exc:
            status = f" (HTTP {exc.status})" if exc.status else ""
            hint = (
                " The API key needs the Suppressions read permission."
                if exc.status in (401, 403)
                else ""
            )
            raise fail(
                f"SendGrid's {exc.list_name} list could not be read{status}: {exc.reason}.{hint}"
            ) from None
    read = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in report.entries.items())
    console.print(f"Read {read}; {report.stored} not seen before.")
    if not report.changed:
        console.print("No subscriber changed status.")
    for change in report.changed:
        where = change.list_name.replace("_", " ")
        console.print(f"{change.email}: now {change.status.value} (SendGrid's {where} list)")
    for name in report.truncated:
        console.print(f"The {name} list is longer than could be read at once; run again.")
