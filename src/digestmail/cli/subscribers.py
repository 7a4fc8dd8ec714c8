"""``digestmail subscribers …``: the staff's tools for the list."""

from __future__ import annotations

import getpass
import io
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

import typer
from rich.table import Table

from digestmail import listfile, subscribers
from digestmail.cli.common import console, database, err_console, fail
from digestmail.config import get_settings
from digestmail.listfile import ExportFormat
from digestmail.models import ChangeCause, SubscriberStatus
from digestmail.transports.base import TransportError

app = typer.Typer(
    help="Manage subscribers: add, import, export, remove, list.", no_args_is_help=True
)


def _staff() -> str:
    """Who ran the command, for the consent record."""
    try:
        return f"staff:{getpass.getuser()}"
    except (KeyError, OSError):
        return "staff"


def _send_confirmations(people: list[tuple[int, str]]) -> None:
    if not people:
        return
    from digestmail import confirmation  # the mail renderer, for the commands that mail

    try:
        result = confirmation.send(get_settings(), confirmation.Kind.SUBSCRIBE, people)
    except TransportError as exc:
        raise fail(
            f"the subscribers are saved as pending, but confirmations were not sent: {exc}"
        ) from None
    console.print(f"Sent {len(result.accepted)} confirmation email(s).")
    for rejected in result.rejected:
        err_console.print(f"Not sent to {rejected.email}: {rejected.error}")


@app.command()
def add(
    email: str = typer.Argument(..., help="The address to add."),
    name: str | None = typer.Option(None, "--name", help="The subscriber's name."),
    confirmed: bool = typer.Option(
        False,
        "--confirmed",
        help="Staff vouch for consent (e.g. the reader asked in writing): active at once. "
        "Without it, a confirmation email is sent.",
    ),
) -> None:
    """Add one subscriber."""
    try:
        address = subscribers.normalize(email)
    except subscribers.InvalidAddress as exc:
        raise fail(str(exc), 2) from None
    with database() as db:
        try:
            with db.session() as session:
                sub, needs_mail = subscribers.add_by_staff(
                    session,
                    address,
                    name=name,
                    confirmed=confirmed,
                    staff=_staff(),
                    settings=get_settings(),
                )
                summary = (sub.id, sub.email, sub.status)
        except subscribers.Erased:
            raise fail(
                f"{address.email} was erased on request; it can only come back by subscribing "
                "itself (the form or an email), which asks for confirmation."
            ) from None
        except subscribers.Complained:
            raise fail(
                f"{address.email} marked the digest as spam, so nothing is sent to them, not "
                "even a confirmation. If they asked you in writing to be added back, run: "
                f"digestmail subscribers add {address.email} --confirmed"
            ) from None
    sub_id, sub_email, status = summary
    if needs_mail:
        _send_confirmations([(sub_id, sub_email)])
    if status in subscribers.SUPPRESSED:
        console.print(
            f"{sub_email} is {status.value}; a confirmation email was sent, and they are "
            "back on the list only if they follow it."
        )
    else:
        console.print(f"{sub_email} is {status.value} (id {sub_id}).")


def _list_problem(exc: listfile.ListFileError, path: Path) -> str:
    """One line for a file that cannot be used at all, and what to do about it."""
    match exc.problem:
        case listfile.Problem.NOT_UTF8:
            return (
                f"{path} is not UTF-8 text: line {exc.line} has bytes that are not UTF-8 "
                f'({exc.detail}). Save it as "CSV UTF-8" and import it again; nothing was '
                "imported."
            )
        case listfile.Problem.EMPTY:
            return f"{path} is empty; nothing was imported."
        case listfile.Problem.HEADER_UNREADABLE:
            return (
                f"{path}, line 1: the first line is not readable as CSV ({exc.detail}); "
                "nothing was imported."
            )
        case listfile.Problem.NO_EMAIL_COLUMN:
            return (
                f"{path}: the first line must name the columns, with 'email' among them "
                f"(found {exc.detail or 'nothing'}); nothing was imported."
            )
        case listfile.Problem.TARGET_IS_FOLDER:
            return (
                f"{path} is a folder: give the file to write, such as {path / 'subscribers.csv'}. "
                "Nothing was written."
            )
        case listfile.Problem.NO_SUCH_FOLDER:
            return (
                f"The folder {exc.detail} does not exist: create it, or export somewhere "
                "else. Nothing was written."
            )
        case listfile.Problem.CANNOT_WRITE:
            return f"Cannot write {path}: {exc.detail}. Nothing was written."


def _shown(value: str, limit: int = 80) -> str:
    """A cell for a report line: quoted, and cut short (a bad cell can be huge)."""
    if not value:
        return "the row"
    return repr(value if len(value) <= limit else value[:limit] + "…")


@app.command("import")
def import_(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with email,name."),
    double_opt_in: bool = typer.Option(
        False,
        "--double-opt-in",
        help="Add new rows as pending and email each a confirmation link, instead of "
        "adding them as active on staff's word.",
    ),
) -> None:
    """Import subscribers from a CSV file; safe to run again on the same file.

    Bad rows are reported with their line numbers and skipped; good rows are kept.
    Addresses already on the list are left exactly as they are.
    """
    try:
        read = listfile.read_csv(path.read_bytes())
    except listfile.ListFileError as exc:
        raise fail(_list_problem(exc, path), 2) from None
    with database() as db, db.session() as session:
        report = subscribers.import_rows(
            session,
            read.rows,
            double_opt_in=double_opt_in,
            staff=_staff(),
            source_label=path.name,
            settings=get_settings(),
        )
    report.bad = sorted(read.bad + report.bad, key=lambda bad: bad.line)
    for bad in report.bad:
        err_console.print(
            f"{path.name}, line {bad.line}: skipped {_shown(bad.value)}: {bad.reason}"
        )
    summary = (
        ("Added", len(report.added)),
        ("Already on the list (left unchanged)", report.existing),
        ("Repeated in the file", report.duplicates),
        ("Erased on request (skipped)", report.erased),
        ("Bad rows (skipped)", len(report.bad)),
    )
    for label, count in summary:
        console.print(f"{label}: {count}", soft_wrap=True)
    if double_opt_in:
        _send_confirmations(report.added)


def _write_export(out: TextIO, fmt: ExportFormat, status: SubscriberStatus | None) -> int:
    with database() as db, db.session() as session:
        return listfile.write_export(out, fmt, subscribers.iter_subscribers(session, status))


@app.command()
def export(
    fmt: ExportFormat = typer.Option(ExportFormat.CSV, "--format", "-f", help="csv or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
    status: SubscriberStatus | None = typer.Option(None, "--status", help="Only this status."),
) -> None:
    """Export every subscriber: email, name, status, source, dates and consent record."""
    if output is None:
        _write_export(sys.stdout, fmt, status)
        return
    try:
        with listfile.replacing(output) as fh:
            count = _write_export(fh, fmt, status)
    except listfile.ListFileError as exc:
        raise fail(_list_problem(exc, output)) from None
    err_console.print(f"Exported {count} subscriber(s) to {output}.")


@app.command()
def remove(
    email: str = typer.Argument(..., help="The address to remove."),
    erase: bool = typer.Option(
        False,
        "--erase",
        help="GDPR erasure: delete all personal data, keep only a hash so that a later "
        "import cannot bring the address back.",
    ),
) -> None:
    """Take an address off the list (kept as unsubscribed, so it is never mailed again).

    A complaint is kept as it is: it is a stronger record than an unsubscribe.
    """
    with database() as db, db.session() as session:
        if erase:
            existed = subscribers.erase(session, get_settings(), email)
            message = (
                f"Erased {email}: personal data deleted, a hash kept to block re-imports."
                if existed
                else f"{email} was not on the list; recorded the erasure so imports skip it."
            )
        else:
            sub = subscribers.remove(session, email, by=_staff())
            if sub is None:
                raise fail(f"No subscriber with the address {email!r}.")
            if sub.status is SubscriberStatus.UNSUBSCRIBED:
                message = f"{sub.email} is unsubscribed and will not be mailed again."
            else:
                message = (
                    f"{sub.email} stays {sub.status.value} (a stronger record than "
                    "unsubscribed) and will not be mailed again."
                )
    console.print(message)


@app.command("list")
def list_(
    status: SubscriberStatus | None = typer.Option(None, "--status", help="Only this status."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines, for scripts."),
) -> None:
    """List subscribers (newest last)."""
    if as_json:
        buffer = io.StringIO()
        _write_export(buffer, ExportFormat.JSON, status)
        sys.stdout.write(buffer.getvalue())
        return
    table = Table("id", "email", "name", "status", "source", "since")
    with database() as db, db.session() as session:
        for sub in subscribers.iter_subscribers(session, status):
            table.add_row(
                str(sub.id),
                sub.email,
                sub.name or "",
                sub.status.value,
                sub.source.value,
                sub.created_at.strftime("%Y-%m-%d"),
            )
    console.print(table)


# --- subscribers show ---------------------------------------------------------------

# What each cause of a change is called when shown to staff.
_CAUSE_WORDS = {
    ChangeCause.FORM: "the subscribe form",
    ChangeCause.EMAIL: "an email to the contact address",
    ChangeCause.STAFF: "staff",
    ChangeCause.IMPORT: "an import",
    ChangeCause.CONFIRMATION_LINK: "the confirmation link",
    ChangeCause.UNSUBSCRIBE_LINK: "the unsubscribe link",
    ChangeCause.EVENT: "a mail event",
}


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _record_json(record: subscribers.SubscriberRecord) -> dict[str, object]:
    sub = record.subscriber
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status.value,
        "source": sub.source.value,
        "created_at": _iso(sub.created_at),
        "confirmed_at": _iso(sub.confirmed_at),
        "unsubscribed_at": _iso(sub.unsubscribed_at),
        "consent": {
            "at": _iso(sub.consent_at),
            "ip": sub.consent_ip,
            "by": sub.consent_by,
            "text": sub.consent_text,
        },
        "soft_bounces": {
            "score": record.soft_bounce_score,
            "limit": record.soft_bounce_limit,
            "window_days": record.soft_bounce_window,
            "days": [_iso(d) for d in record.soft_bounce_days],
        },
        "changes": [
            {
                "at": _iso(c.at),
                "from": c.old_status.value if c.old_status else None,
                "to": c.new_status.value,
                "cause": c.cause.value,
                "event": c.provider_event_id,
                "event_kind": c.event_kind.value if c.event_kind else None,
                "detail": c.detail,
                "by": c.by,
            }
            for c in record.changes
        ],
        "events": [
            {
                "at": _iso(e.at),
                "kind": e.kind.value,
                "source": e.source,
                "reason": e.reason,
                "campaign": e.campaign_id,
                "event": e.provider_event_id,
            }
            for e in record.events
        ],
    }


def _change_line(change: subscribers.Change) -> str:
    when = change.at.strftime("%Y-%m-%d %H:%M")
    moved = (
        f"{change.old_status.value} -> {change.new_status.value}"
        if change.old_status
        else f"added as {change.new_status.value}"
    )
    cause = _CAUSE_WORDS[change.cause]
    if change.event_kind is not None:
        cause = f"{change.event_kind.value} event {change.provider_event_id or '(deleted)'}"
    if change.by:
        cause += f" ({change.by})"
    line = f"  {when}  {moved}, by {cause}"
    return line + (f": {change.detail}" if change.detail else "")


@app.command()
def show(
    email: str = typer.Argument(..., help="The subscriber's address."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One subscriber: consent record, every status change with its cause, bounces."""
    with database() as db, db.session() as session:
        record = subscribers.record_of(session, get_settings(), email)
        if record is None:
            raise fail(f"No subscriber with the address {email!r}.")
        if as_json:
            typer.echo(json.dumps(_record_json(record), indent=2))
            return
        sub = record.subscriber
        out = [
            f"{sub.email} (id {sub.id}): {sub.status.value}",
            f"  name: {sub.name or '-'}",
            f"  source: {sub.source.value}, on the list since {sub.created_at:%Y-%m-%d}",
            f"  confirmed: {_iso(sub.confirmed_at) or 'never'}",
            "Consent record:",
            f"  asked at {_iso(sub.consent_at) or 'unknown'}"
            + (f" from {sub.consent_ip}" if sub.consent_ip else "")
            + (f" by {sub.consent_by}" if sub.consent_by else ""),
            f"  wording shown: {sub.consent_text or '-'}",
            f"Soft bounces: {record.soft_bounce_score} of {record.soft_bounce_limit} "
            f"(points from the last {record.soft_bounce_window} days"
            + (
                ": " + ", ".join(d.isoformat() for d in record.soft_bounce_days) + ")"
                if record.soft_bounce_days
                else ")"
            ),
            "Status changes:",
            *(
                [_change_line(c) for c in record.changes]
                or ["  none recorded (history is kept for changes made since bounce tracking)"]
            ),
            "Bounces, complaints and unsubscribes reported by mail services:",
            *(
                [
                    f"  {e.at:%Y-%m-%d %H:%M}  {e.kind.value} ({e.source}"
                    + (f", campaign {e.campaign_id}" if e.campaign_id else "")
                    + ")"
                    + (f": {e.reason}" if e.reason else "")
                    for e in record.events
                ]
                or ["  none"]
            ),
        ]
    for line in out:
        console.print(line, soft_wrap=True)
