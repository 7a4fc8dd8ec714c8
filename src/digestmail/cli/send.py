"""``digestmail send`` and ``digestmail campaign …``: sending an issue and steering it.

The work itself is in ``digestmail.campaigns`` (the scheduler calls the same code);
this module only asks, shows progress and reports.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digestmail import campaigns
from digestmail.campaigns import CampaignError, CampaignInfo, SendProgress
from digestmail.cli.common import console, err_console, open_database
from digestmail.config import get_settings
from digestmail.db import Database
from digestmail.issues import get_issue
from digestmail.models import CampaignStatus
from digestmail.subscribers import InvalidAddress, normalize
from digestmail.transports.base import TransportError

campaign_app = typer.Typer(
    help="Campaigns (one sending of one issue): list, status, pause, resume, cancel.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    err_console.print(message, markup=False)
    return typer.Exit(1)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _run(db: Database, campaign_id: int, *, resume: bool) -> CampaignInfo:
    """Send in the foreground with a progress bar; the bar shows sent, failed and rate."""
    settings = get_settings()
    with Progress(
        TextColumn("[bold]campaign {task.fields[cid]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "sent {task.fields[sent]}  failed {task.fields[failed]}  "
            "retrying {task.fields[retrying]}  skipped {task.fields[skipped]}  "
            "{task.fields[rate]:.0f}/s"
        ),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(
            "send", total=None, cid=campaign_id, sent=0, failed=0, retrying=0, skipped=0, rate=0
        )

        def show(p: SendProgress) -> None:
            bar.update(
                task,
                total=p.total,
                completed=p.done,
                sent=p.accepted,
                failed=p.rejected,
                retrying=p.retrying,
                skipped=p.skipped,
                rate=p.rate,
            )

        try:
            info = campaigns.run_campaign(
                db, settings, campaign_id, resume=resume, on_progress=show
            )
        except TransportError as exc:
            info = campaigns.campaign_info(db, campaign_id)
            bar.stop()
            error = info.error or str(exc)
            hint = (
                ""
                if "campaign resume" in error
                else "\nFix the cause, then continue with "
                f"`digestmail campaign resume {campaign_id}`."
            )
            raise _fail(f"Campaign {campaign_id} is {info.status}: {error}{hint}") from exc
        except CampaignError as exc:
            bar.stop()
            raise _fail(str(exc)) from exc
    return info


def _report(info: CampaignInfo) -> None:
    c = info.counts
    console.print(
        f"Campaign {info.id} ({info.issue_slug}) is {info.status}: "
        f"{c['accepted']} sent, {c['rejected']} failed, {c['skipped']} skipped, "
        f"{c['pending'] + c['claimed']} not sent yet."
    )
    for line in _temporary_lines(info):
        console.print(line, markup=False)
    if info.resent:
        console.print(
            f"{info.resent} recipients were in flight when an earlier sender stopped and were "
            "sent again; they may have received the issue twice."
        )


def _temporary_lines(info: CampaignInfo) -> list[str]:
    """What temporary failures left behind, for the summary and ``campaign status``."""
    lines = []
    if info.retrying:
        lines.append(
            f"{info.retrying} recipients failed temporarily and wait for another try"
            + (
                ""
                if info.status == "sending"
                else f" (`digestmail campaign resume {info.id}` tries them again)"
            )
            + "."
        )
    if info.rejected_after_retries:
        lines.append(
            f"{info.rejected_after_retries} recipients failed after temporary failures "
            "(counted as failed; their errors say why)."
        )
    if info.in_flight_unknown:
        lines.append(
            f"{info.in_flight_unknown} recipients were in flight when the sender stopped; "
            f"`digestmail campaign resume {info.id}` sends to them again "
            "(they may get it twice)."
        )
    return lines


def send(
    slug: str = typer.Argument(..., help="The issue's slug (see `digestmail issue list`)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    test_to: list[str] | None = typer.Option(
        None,
        "--test-to",
        help="Send a test to this address only (repeatable); the list is not touched.",
    ),
    again: bool = typer.Option(False, "--again", help="Send an issue that was sent before."),
) -> None:
    """Send an issue to every active subscriber now (or a test to a few addresses)."""
    settings = get_settings()
    db = open_database()
    try:
        issue = get_issue(db, slug)
        if issue is None:
            raise _fail(f"There is no issue {slug!r}; `digestmail issue list` shows them.")
        if test_to:
            _send_test(db, slug, test_to)
            return
        try:
            campaigns.check_new_campaign(db, slug, again=again)
        except CampaignError as exc:
            raise _fail(str(exc)) from exc
        audience = campaigns.active_audience_size(db)
        if not yes:
            if not sys.stdin.isatty():
                raise _fail("Not sending: no terminal to confirm on. Pass --yes to send.")
            where = (
                f" (outbox: files in {settings.outbox_dir}, nothing leaves this machine)"
                if settings.transport == "outbox"
                else ""
            )
            if not typer.confirm(
                f"Send “{issue.subject}” to {audience} active subscribers "
                f"through {settings.transport}{where}?"
            ):
                raise _fail("Not sent.")
        try:
            # Checked again, atomically: another `send` may have started meanwhile.
            campaign_id = campaigns.create_campaign(db, settings, slug, again=again)
        except CampaignError as exc:
            raise _fail(str(exc)) from exc
        console.print(f"Campaign {campaign_id}: sending {slug} to {audience} subscribers.")
        info = _run(db, campaign_id, resume=False)
        _report(info)
    finally:
        db.dispose()


def _send_test(db: Database, slug: str, addresses: list[str]) -> None:
    """A test send: every address checked first, the transport's refusal in plain words."""
    settings = get_settings()
    checked = []
    for raw in addresses:
        try:
            checked.append(normalize(raw).email)
        except InvalidAddress as exc:
            raise _fail(f"Not sent: {exc}.") from exc
    try:
        result = campaigns.send_test(db, settings, slug, checked)
    except TransportError as exc:
        raise _fail(f"Test not sent: {exc}") from exc
    for acc in result.accepted:
        console.print(f"Test sent to {acc.email}.", markup=False)
    if result.accepted and settings.transport == "outbox":
        # Nothing left the machine: say where to look.
        console.print(
            f"Outbox transport: the message is a .eml file in {settings.outbox_dir.resolve()} "
            "(open it in a mail program, or see /admin/outbox in the web app).",
            markup=False,
        )
    for rej in result.rejected:
        err_console.print(f"Test to {rej.email} failed: {rej.error}", markup=False)
    if result.rejected:
        raise typer.Exit(1)


@campaign_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Campaigns, newest first, with their counts per ledger state."""
    db = open_database()
    try:
        infos = campaigns.list_campaigns(db)
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps([i.to_json() for i in infos], indent=2))
        return
    if not infos:
        console.print("No campaigns yet.")
        return
    table = Table("ID", "Issue", "Status", "Sent", "Failed", "Skipped", "Left", "Started", "Done")
    table.columns[1].no_wrap = True
    for i in infos:
        c = i.counts
        table.add_row(
            str(i.id),
            i.issue_slug,
            i.status,
            str(c["accepted"]),
            str(c["rejected"]),
            str(c["skipped"]),
            str(c["pending"] + c["claimed"]),
            _short(i.started_at),
            _short(i.finished_at),
        )
    console.print(table)


@campaign_app.command("status")
def status(
    campaign_id: int | None = typer.Argument(None, help="Campaign id (default: the newest)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One campaign in detail: counts per state, times, errors, recipients sent twice."""
    db = open_database()
    try:
        if campaign_id is None:
            newest = campaigns.list_campaigns(db, limit=1)
            if not newest:
                raise _fail("No campaigns yet.")
            info = newest[0]
        else:
            info = campaigns.campaign_info(db, campaign_id)
    except CampaignError as exc:
        raise _fail(str(exc)) from exc
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps(info.to_json(), indent=2))
        return
    console.print(f"Campaign {info.id}: {info.issue_slug}, {info.status} ({info.transport})")
    for label, value in (
        ("Created", _when(info.created_at)),
        ("Started", _when(info.started_at)),
        ("Finished", _when(info.finished_at)),
    ):
        console.print(f"  {label:9} {value}")
    for state, n in info.counts.items():
        console.print(f"  {state:9} {n}")
    if info.sender_alive:
        console.print(f"  Being sent by {info.lease_owner}.")
    for line in _temporary_lines(info):
        console.print(f"  {line}", markup=False)
    if info.resent:
        console.print(
            f"  {info.resent} recipients were sent to again after a sender stopped mid-batch "
            "(they may have received it twice)."
        )
    if info.error:
        console.print(f"  Error: {info.error}", markup=False)


@campaign_app.command("pause")
def pause(campaign_id: int = typer.Argument(..., help="Campaign id.")) -> None:
    """Stop after the batch being sent; `campaign resume` continues where it stopped."""
    db = open_database()
    try:
        campaigns.pause_campaign(db, campaign_id)
    except CampaignError as exc:
        raise _fail(str(exc)) from exc
    finally:
        db.dispose()
    console.print(f"Campaign {campaign_id} paused (the sender stops after its current batch).")


@campaign_app.command("cancel")
def cancel(campaign_id: int = typer.Argument(..., help="Campaign id.")) -> None:
    """Stop for good after the batch being sent; recipients not reached stay on record."""
    db = open_database()
    try:
        campaigns.cancel_campaign(db, campaign_id)
    except CampaignError as exc:
        raise _fail(str(exc)) from exc
    finally:
        db.dispose()
    console.print(f"Campaign {campaign_id} cancelled.")


@campaign_app.command("resume")
def resume(campaign_id: int = typer.Argument(..., help="Campaign id.")) -> None:
    """Continue a paused or failed campaign, or one whose sender died (once its lease expired)."""
    db = open_database()
    try:
        try:
            before = campaigns.campaign_info(db, campaign_id)
        except CampaignError as exc:
            raise _fail(str(exc)) from exc
        if before.status in (CampaignStatus.SENT.value, CampaignStatus.CANCELLED.value):
            # Say so before drawing an empty progress bar.
            raise _fail(f"Campaign {campaign_id} is {before.status}: there is nothing to resume.")
        info = _run(db, campaign_id, resume=True)
        _report(info)
    finally:
        db.dispose()
