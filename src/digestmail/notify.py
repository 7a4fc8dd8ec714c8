"""What staff are told: short plain emails to ``DIGESTMAIL_STAFF_EMAILS``, else the log.

A report after every campaign run, a note for every scheduled send that was skipped
or missed and for every campaign resumed automatically, and a reminder the day before
a scheduled send that has nothing ready to go. Without staff addresses the same lines
go to the log. A notice that cannot be sent is logged and never stops what it reports
on. The words here state facts; they name no command (the reader may be using the
admin, or reading the log on a phone).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from digestmail.campaigns.info import CampaignInfo
from digestmail.config import Settings
from digestmail.models import CampaignStatus, SkipReason, StopReason
from digestmail.transports import get_transport
from digestmail.transports.base import MessageTemplate, Recipient

log = logging.getLogger(__name__)

# Why a scheduled send sent nothing, in words (the CLI and the admin show the same).
SKIP_WORDS: dict[SkipReason, str] = {
    SkipReason.NO_READY_ISSUE: "no issue was ready to send",
    SkipReason.NOT_READY: "its issue was a draft, not marked ready",
    SkipReason.ALREADY_SENT: "its issue had already been sent",
    SkipReason.UNFINISHED: "a campaign of its issue was still unfinished",
    SkipReason.NO_SUBSCRIBERS: "there were no active subscribers",
}

# Why a campaign stopped short of sent, in words without instructions.
STOP_WORDS: dict[StopReason, str] = {
    StopReason.REFUSED: "the mail service refused it",
    StopReason.UNCERTAIN: "the mail service did not say whether it took the last batch",
    StopReason.WAIT_TOO_LONG: "the mail service asked for a long pause",
    StopReason.KEPT_FAILING: "the mail service kept failing",
    StopReason.UNBUILDABLE: "the issue cannot be built into an email",
    StopReason.INTERRUPTED: "the sender was interrupted",
    StopReason.UNEXPECTED: "an unexpected error",
    StopReason.NO_AUDIENCE: "there were no active subscribers",
}


def when(moment: datetime, zone: str) -> str:
    """A moment as staff read it: their wall clock, the zone named."""
    local = moment.astimezone(ZoneInfo(zone))
    named = "" if local.tzname() == zone else f" ({zone})"
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}{named}"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def tell(settings: Settings, subject: str, lines: Sequence[str], *, problem: bool) -> None:
    """Send one notice to staff, or log it; never raises."""
    level = logging.WARNING if problem else logging.INFO
    if not settings.staff_emails:
        for line in (subject, *lines):
            log.log(level, "%s", line)
        return
    text = "\n".join(lines) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    template = MessageTemplate(
        subject=subject,
        html=f"<!doctype html><html><body>{body}</body></html>",
        text=text,
        from_addr=settings.from_,
        headers={"Auto-Submitted": "auto-generated"},
        bulk=False,
        categories=("staff-notice",),
    )
    try:
        transport = get_transport(settings)
        try:
            result = transport.send_batch(template, [Recipient(a) for a in settings.staff_emails])
        finally:
            transport.close()
        for rejected in result.rejected:
            log.error("staff notice to %s not sent: %s", rejected.email, rejected.error)
    except Exception as exc:
        log.error("staff notice not sent (%s: %s); it said:", type(exc).__name__, exc)
        for line in (subject, *lines):
            log.log(level, "%s", line)


def campaign_report(settings: Settings, info: CampaignInfo, seconds: float) -> None:
    """After a campaign run: where it stands, the figures so far, how long it took."""
    c = info.counts
    status = info.status
    lines = [
        f"Campaign {info.id} ({info.issue_slug}) is {status.value}.",
        f"Sent: {c['accepted']}. Rejected: {c['rejected']}. Skipped (left the list): "
        f"{c['skipped']}. Not sent yet: {c['pending'] + c['claimed']}. "
        f"Recipients: {info.total}.",
    ]
    if status is CampaignStatus.SENT and info.started_at and info.finished_at:
        lines.append(
            f"Sending took {duration((info.finished_at - info.started_at).total_seconds())}"
            f" (this run: {duration(seconds)})."
        )
    else:
        lines.append(f"This run took {duration(seconds)}.")
    if info.resent:
        lines.append(
            f"{info.resent} recipients were in flight when an earlier sender stopped and were "
            "sent to again; they may have received it twice."
        )
    if info.error_reason is not None:
        detail = f": {info.error}" if info.error else ""
        lines.append(f"It stopped because {STOP_WORDS[info.error_reason]}{detail}.")
    problem = status is not CampaignStatus.SENT
    tell(
        settings,
        f"{settings.publication}: campaign {info.id} ({info.issue_slug}) {status.value}",
        lines,
        problem=problem,
    )


def occurrence_skipped(
    settings: Settings,
    schedule_id: int,
    slot: datetime,
    zone: str,
    reason: SkipReason,
    slug: str | None,
) -> None:
    what = f", {slug}" if slug else ""
    tell(
        settings,
        f"{settings.publication}: scheduled send skipped",
        [
            f"Nothing was sent at {when(slot, zone)} (schedule {schedule_id}{what}): "
            f"{SKIP_WORDS[reason]}.",
        ],
        problem=True,
    )


def occurrence_missed(
    settings: Settings,
    schedule_id: int,
    slot: datetime,
    zone: str,
    late: timedelta,
    grace: float,
    slug: str | None,
) -> None:
    what = f", {slug}" if slug else ""
    tell(
        settings,
        f"{settings.publication}: scheduled send missed",
        [
            f"The send of {when(slot, zone)} (schedule {schedule_id}{what}) was missed: the "
            f"scheduler was not running then, and {duration(late.total_seconds())} later is "
            f"past the {duration(grace)} a send may run late. Nothing was sent.",
        ],
        problem=True,
    )


def campaign_resumed(
    settings: Settings, campaign_id: int, slug: str, recovered: int, took_over: bool
) -> None:
    why = "its sender's process is gone" if took_over else "its sender stopped renewing its lease"
    lines = [f"Campaign {campaign_id} ({slug}) was resumed automatically: {why}."]
    if recovered:
        lines.append(
            f"{recovered} recipients were in flight when it stopped; they are sent to "
            "again, and some may receive it twice."
        )
    tell(settings, f"{settings.publication}: campaign {campaign_id} resumed", lines, problem=True)


def reminder(
    settings: Settings, schedule_id: int, slot: datetime, zone: str, draft: str | None
) -> None:
    """The day before a scheduled send with nothing ready: ``draft`` is a one-off's issue."""
    if draft is None:
        problem = "no issue is ready: mark one ready, or nothing will be sent"
    else:
        problem = f"its issue {draft} is a draft: mark it ready, or it will not be sent"
    tell(
        settings,
        f"{settings.publication}: nothing ready for the send of {when(slot, zone)}",
        [f"The send of {when(slot, zone)} (schedule {schedule_id}) is coming up, and {problem}."],
        problem=True,
    )
