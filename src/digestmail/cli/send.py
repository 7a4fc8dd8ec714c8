"""``digestmail send`` and ``digestmail campaign …``: sending an issue and steering it.

The work itself is in ``digestmail.campaigns`` (the scheduler calls the same code);
this module asks, shows progress, and turns what the campaign code reports (errors
and stop reasons carrying ids, statuses and facts) into sentences with the command
to type next. A ``CampaignError`` a command does not catch is worded here too
(``campaign_problem``, registered with the CLI's one error handler).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digestmail import campaigns, stats
from digestmail.campaigns import (
    CampaignError,
    CampaignExists,
    CampaignInfo,
    CampaignNotFound,
    EmptyAudience,
    IssueNotFound,
    LeaseHeld,
    LeaseLost,
    MessageNotBuilt,
    SendProgress,
    WrongStatus,
)
from digestmail.cli.common import console, database, err_console, fail
from digestmail.cli.errors import words_for
from digestmail.cli.stats import figure_lines
from digestmail.config import get_settings
from digestmail.db import Database
from digestmail.issues import get_issue
from digestmail.models import CampaignStatus, StopReason
from digestmail.subscribers import InvalidAddress, normalize
from digestmail.transports.base import TransportError

campaign_app = typer.Typer(
    help="Campaigns (one sending of one issue): list, status, pause, resume, cancel.",
    no_args_is_help=True,
)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _resume(cid: int | None) -> str:
    return f"`digestmail campaign resume {cid}`"


# --- the campaign code's facts, in words ------------------------------------------------


def _not_built(slug: str, reason: str) -> str:
    return f"issue {slug} cannot be sent as an email: {reason}"


@words_for(CampaignError)
def _campaign_error(exc: CampaignError) -> tuple[str, int]:
    return campaign_problem(exc), 1


def campaign_problem(exc: CampaignError) -> str:
    """One line for a refusal of the campaign code, with what to do next."""
    if isinstance(exc, CampaignNotFound):
        return f"There is no campaign {exc.campaign_id}; `digestmail campaign list` shows them."
    if isinstance(exc, IssueNotFound):
        return (
            f"There is no issue {exc.slug!r}; `digestmail issue list` shows them "
            "(add one with `digestmail issue add FILE`)."
        )
    if isinstance(exc, CampaignExists):
        cid = exc.campaign_id
        if exc.unfinished and exc.status is not None:
            return (
                f"Campaign {cid} of {exc.slug} is {exc.status.value}: continue it with "
                f"{_resume(cid)}, or cancel it with `digestmail campaign cancel {cid}` "
                "before starting another."
            )
        if exc.failed:
            return (
                f"Campaign {cid} of {exc.slug} is failed: continue it with {_resume(cid)}, "
                "or pass --again to start another campaign to every active subscriber."
            )
        when = ""
        if cid is not None and exc.status is not None:
            done = f", {exc.finished_at:%Y-%m-%d %H:%M} UTC" if exc.finished_at else ""
            when = f" (campaign {cid}, {exc.status.value}{done})"
        return (
            f"{exc.slug} was already sent{when}; pass --again to send it to every active "
            "subscriber once more."
        )
    if isinstance(exc, EmptyAudience):
        return (
            f"Not sent: there are no active subscribers to send {exc.slug} to (nobody has "
            "confirmed yet). `digestmail subscribers list` shows the list."
        )
    if isinstance(exc, WrongStatus):
        hint = f" (use {_resume(exc.campaign_id)} to continue it)" if exc.resumable else ""
        return f"Campaign {exc.campaign_id} is {exc.status.value}{hint}."
    if isinstance(exc, LeaseHeld):
        until = f" (lease until {exc.expires_at:%Y-%m-%d %H:%M:%S} UTC)" if exc.expires_at else ""
        return (
            f"Campaign {exc.campaign_id} is being sent by {exc.owner}{until}; if that process "
            "was on another machine and is dead, try again once the lease has expired."
        )
    if isinstance(exc, LeaseLost):
        return (
            f"Stopped sending campaign {exc.campaign_id}: this sender's lease ran out and "
            "another sender has taken it over."
        )
    if isinstance(exc, MessageNotBuilt):
        if exc.campaign_id is None:
            return (
                f"Not sent: {_not_built(exc.slug, exc.reason)}. Fix the issue file, store it "
                "again with `digestmail issue add FILE`, and send the test again."
            )
        return (
            f"Campaign {exc.campaign_id} failed: {_not_built(exc.slug, exc.reason)}. Fix the "
            "issue file, store it again with `digestmail issue add FILE`, then continue with "
            f"{_resume(exc.campaign_id)}."
        )
    return str(exc)


def stop_explained(info: CampaignInfo) -> str | None:
    """Why the campaign's last sender stopped short of sent, and what to do; None if it
    did not (or the campaign has no error)."""
    facts = info.error_data
    detail = (info.error or "").rstrip(". ")  # each case ends the sentence itself
    cid = info.id
    match info.error_reason:
        case None:
            return info.error  # recorded before reasons were kept: the words as they were
        case StopReason.REFUSED:
            return f"{detail}. Fix the cause, then continue with {_resume(cid)}."
        case StopReason.KEPT_FAILING:
            return (
                f"the {facts.get('transport', info.transport)} transport kept failing "
                f"({facts.get('tries', '?')} tries): {detail}. Continue with {_resume(cid)} "
                "once it works again."
            )
        case StopReason.WAIT_TOO_LONG:
            until = facts.get("until")
            when = ""
            if until:
                when = f", until {datetime.fromisoformat(until):%Y-%m-%d %H:%M} UTC"
            return (
                f"the {facts.get('transport', info.transport)} transport asked to wait "
                f"{float(facts.get('wait_seconds', 0)):.0f} s (Retry-After{when}) before "
                f"sending more: {detail}. Resume it after that with {_resume(cid)}."
            )
        case StopReason.UNCERTAIN:
            n = facts.get("recipients", info.in_flight_unknown)
            # "batch": one number, as recorded before several batches could be in flight.
            numbers = facts.get("batches") or ([facts["batch"]] if "batch" in facts else [])
            batch = ""
            if numbers:
                many = "es" if len(numbers) > 1 else ""
                batch = f" (batch{many} {', '.join(map(str, numbers))})"
            return (
                f"{detail}. {n} recipients{batch} may or may not have received the issue; "
                f"{_resume(cid)} sends it to them again (some may get it twice)."
            )
        case StopReason.UNBUILDABLE:
            return (
                f"{_not_built(info.issue_slug, detail)}. Fix the issue file, store it again "
                f"with `digestmail issue add FILE`, then continue with {_resume(cid)}."
            )
        case StopReason.INTERRUPTED:
            return f"interrupted by the operator. Continue with {_resume(cid)}."
        case StopReason.UNEXPECTED:
            return (
                f"stopped by an unexpected error: {detail}. Continue with {_resume(cid)} "
                "once the cause is fixed."
            )
        case StopReason.NO_AUDIENCE:
            return (
                "nobody was an active subscriber when it started, so nothing was sent and "
                "the issue is not marked sent."
            )


# --- sending ---------------------------------------------------------------------------


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
        # Drawn for someone watching; in a script or a log it would only cost time.
        disable=not console.is_terminal,
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
            return campaigns.run_campaign(
                db, settings, campaign_id, resume=resume, on_progress=show
            )
        except TransportError as exc:
            # The sender stopped the campaign and recorded why: say it from the record.
            bar.stop()
            info = campaigns.campaign_info(db, campaign_id)
            why = stop_explained(info) or str(exc)
            raise fail(f"Campaign {campaign_id} is {info.status.value}: {why}") from exc


def _report(info: CampaignInfo) -> None:
    c = info.counts
    console.print(
        f"Campaign {info.id} ({info.issue_slug}) is {info.status.value}: "
        f"{c['accepted']} sent, {c['rejected']} failed, {c['skipped']} skipped, "
        f"{c['pending'] + c['claimed']} not sent yet."
    )
    for line in _temporary_lines(info):
        console.print(line)
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
                if info.status is CampaignStatus.SENDING
                else f" ({_resume(info.id)} tries them again)"
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
            f"{_resume(info.id)} sends to them again (they may get it twice)."
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
    with database() as db:
        issue = get_issue(db, slug)
        if issue is None:
            raise fail(campaign_problem(IssueNotFound(slug)))
        if test_to:
            _send_test(db, slug, test_to)
            return
        plan = campaigns.plan_send(db, settings, slug, again=again)
        audience = plan.audience
        if not yes:
            if not sys.stdin.isatty():
                raise fail("Not sending: no terminal to confirm on. Pass --yes to send.")
            where = (
                f" (outbox: files in {settings.outbox_dir}, nothing leaves this machine)"
                if settings.transport == "outbox"
                else ""
            )
            if not typer.confirm(
                f"Send “{plan.subject}” to {audience} active subscribers "
                f"through {settings.transport}{where}?"
            ):
                raise fail("Not sent.")
        # Checked again, atomically: another `send` may have started meanwhile.
        campaign_id = campaigns.create_campaign(db, settings, slug, again=again)
        console.print(f"Campaign {campaign_id}: sending {slug} to {audience} subscribers.")
        _report(_run(db, campaign_id, resume=False))


def _send_test(db: Database, slug: str, addresses: list[str]) -> None:
    """A test send: every address checked first, the transport's refusal in plain words."""
    settings = get_settings()
    checked = []
    for raw in addresses:
        try:
            checked.append(normalize(raw).email)
        except InvalidAddress as exc:
            raise fail(f"Not sent: {exc}.") from exc
    try:
        result = campaigns.send_test(db, settings, slug, checked)
    except TransportError as exc:
        raise fail(f"Test not sent: {exc}") from exc
    for acc in result.accepted:
        console.print(f"Test sent to {acc.email}.")
    if result.accepted and settings.transport == "outbox":
        # Nothing left the machine: say where to look.
        console.print(
            f"Outbox transport: the message is a .eml file in {settings.outbox_dir.resolve()} "
            "(open it in a mail program, or see the Outbox in the staff admin, /admin/outbox)."
        )
    for rej in result.rejected:
        err_console.print(f"Test to {rej.email} failed: {rej.error}")
    if result.rejected:
        raise typer.Exit(1)


# --- campaign … --------------------------------------------------------------------------


@campaign_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Campaigns, newest first, with their counts per ledger state."""
    with database() as db:
        infos = campaigns.list_campaigns(db)
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
            i.status.value,
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
    with database() as db:
        if campaign_id is None:
            newest = campaigns.list_campaigns(db, limit=1)
            if not newest:
                raise fail("No campaigns yet.")
            info = newest[0]
        else:
            info = campaigns.campaign_info(db, campaign_id)
        figures = stats.campaign_figures(db, info.id)
    settings = get_settings()
    limit = campaigns.in_flight_limit(settings)
    unfinished = info.status in campaigns.UNFINISHED or info.status is CampaignStatus.FAILED
    if as_json:
        data = info.to_json()
        data["figures"] = figures.to_json() if figures else None
        data["max_in_flight"] = limit
        typer.echo(json.dumps(data, indent=2))
        return
    console.print(f"Campaign {info.id}: {info.issue_slug}, {info.status.value} ({info.transport})")
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
        console.print(f"  {line}")
    if info.resent:
        console.print(
            f"  {info.resent} recipients were sent to again after a sender stopped mid-batch "
            "(they may have received it twice)."
        )
    if unfinished:
        console.print(
            f"  If a sender dies, up to {limit} recipients in flight ("
            f"{settings.send_concurrency} batches of up to {limit // settings.send_concurrency}) "
            "are sent to again on resume and may receive the issue twice."
        )
    why = stop_explained(info)
    if why:
        console.print(f"  Error: {why}")
    if figures is not None and info.started_at is not None:
        for line in figure_lines(figures):
            console.print(f"  {line}")


@campaign_app.command("pause")
def pause(campaign_id: int = typer.Argument(..., help="Campaign id.")) -> None:
    """Stop after the batches being sent; `campaign resume` continues where it stopped."""
    with database() as db:
        campaigns.pause_campaign(db, campaign_id)
    console.print(
        f"Campaign {campaign_id} paused (the sender stops once the batches it has in flight "
        "are answered)."
    )


@campaign_app.command("cancel")
def cancel(campaign_id: int = typer.Argument(..., help="Campaign id.")) -> None:
    """Stop for good after the batches being sent; recipients not reached stay on record."""
    with database() as db:
        campaigns.cancel_campaign(db, campaign_id)
    console.print(f"Campaign {campaign_id} cancelled.")


@campaign_app.command("resume")
def resume(campaign_id: int = typer.Argument(..., help="Campaign id.")) -> None:
    """Continue a paused or failed campaign, or one whose sender died (once its lease expired)."""
    with database() as db:
        try:
            campaigns.check_resume(db, campaign_id)
        except WrongStatus as exc:
            # Said before drawing an empty progress bar.
            raise fail(
                f"Campaign {campaign_id} is {exc.status.value}: there is nothing to resume."
            ) from exc
        _report(_run(db, campaign_id, resume=True))
