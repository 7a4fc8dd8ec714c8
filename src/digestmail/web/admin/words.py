"""The campaign code's facts in the admin's words (the CLI has its own, with commands).

Plain words for people who are not programmers: what happened, and which button to
press next.
"""

from __future__ import annotations

from datetime import datetime

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
    WrongStatus,
)
from digestmail.models import CampaignStatus, IssueStatus, StopReason

STATUS = {
    CampaignStatus.SCHEDULED: "Waiting to start",
    CampaignStatus.SENDING: "Sending",
    CampaignStatus.PAUSED: "Paused",
    CampaignStatus.SENT: "Sent",
    CampaignStatus.CANCELLED: "Cancelled",
    CampaignStatus.FAILED: "Stopped by a problem",
}

# "This sending …" in a sentence.
_IS = {
    CampaignStatus.SCHEDULED: "is waiting to start",
    CampaignStatus.SENDING: "is being sent",
    CampaignStatus.PAUSED: "is paused",
    CampaignStatus.SENT: "has finished",
    CampaignStatus.CANCELLED: "was cancelled",
    CampaignStatus.FAILED: "was stopped by a problem",
}

ISSUE_STATUS = {
    IssueStatus.DRAFT: "Draft",
    IssueStatus.READY: "Ready to send",
    IssueStatus.SENT: "Sent",
}


def when(value: datetime | None) -> str:
    return value.strftime("%d %b %Y, %H:%M UTC") if value else ""


def campaign_problem(exc: CampaignError) -> str:
    """One sentence for a refusal of the campaign code."""
    if isinstance(exc, CampaignNotFound):
        return "That sending does not exist (any more)."
    if isinstance(exc, IssueNotFound):
        return "That issue does not exist (any more)."
    if isinstance(exc, CampaignExists):
        if exc.unfinished and exc.status is not None:
            return (
                f"A sending of this issue {_IS[exc.status]}. Continue or cancel it before "
                "starting another."
            )
        if exc.failed:
            return (
                "The last sending of this issue stopped because of a problem. You can "
                "continue it, or start a new sending to everyone."
            )
        done = f" on {when(exc.finished_at)}" if exc.finished_at else ""
        return f"This issue was already sent{done}."
    if isinstance(exc, EmptyAudience):
        return "Nobody is subscribed (confirmed) yet, so there is nobody to send this issue to."
    if isinstance(exc, WrongStatus):
        return f"This sending {_IS[exc.status]}, so that cannot be done now."
    if isinstance(exc, LeaseHeld):
        return "This sending is already going on (another process is sending it)."
    if isinstance(exc, LeaseLost):
        return "Another process took over this sending; it goes on there."
    if isinstance(exc, MessageNotBuilt):
        return (
            f"The issue cannot be made into an email: {exc.reason}. Fix the issue file "
            "and upload it again."
        )
    return str(exc)


def stop_reason(info: CampaignInfo) -> str | None:
    """Why the sending stopped short of everyone, and what to do; None if it did not."""
    facts = info.error_data
    detail = (info.error or "").rstrip(".")
    match info.error_reason:
        case None:
            return info.error
        case StopReason.REFUSED:
            return f"The mail service refused it: {detail}. Fix the cause, then press Continue."
        case StopReason.KEPT_FAILING:
            return (
                f"The mail service kept failing ({facts.get('tries', 'several')} tries): "
                f"{detail}. Press Continue once it works again."
            )
        case StopReason.WAIT_TOO_LONG:
            until = facts.get("until")
            later = f" after {when(datetime.fromisoformat(until))}" if until else " later"
            return f"The mail service asked us to wait: {detail}. Press Continue{later}."
        case StopReason.UNCERTAIN:
            n = facts.get("recipients", info.in_flight_unknown)
            return (
                f"The mail service did not say whether it took the last {n} messages: "
                f"{detail}. Continue sends to them again (some may get the issue twice)."
            )
        case StopReason.UNBUILDABLE:
            return (
                f"The issue cannot be made into an email: {detail}. Fix the issue file, "
                "upload it again, then press Continue."
            )
        case StopReason.INTERRUPTED:
            return "The sending was interrupted. Press Continue to go on."
        case StopReason.UNEXPECTED:
            return f"An unexpected error stopped it: {detail}. Press Continue once it is fixed."
        case StopReason.NO_AUDIENCE:
            return "Nobody was subscribed when it started, so nothing was sent."
