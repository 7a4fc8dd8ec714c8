"""What staff do to a campaign: create it, pause it, cancel it, and ask whether to resume.

Sending itself (starting and resuming) is ``sender.run_campaign``. Every refusal is a
``CampaignError`` carrying the facts; each change of status is one conditional UPDATE,
so a click that races the sender either lands or is refused, never half-done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, insert, select, update

from digestmail.campaigns.errors import (
    UNFINISHED,
    CampaignExists,
    CampaignNotFound,
    EmptyAudience,
    IssueNotFound,
    WrongStatus,
)
from digestmail.campaigns.info import CampaignInfo, active_audience_size, campaign_info, check_id
from digestmail.campaigns.tables import C, I, S
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import CampaignStatus, IssueStatus, SubscriberStatus, utcnow


def _refuse_new_campaign(conn: Connection, issue_id: int, slug: str, *, again: bool) -> None:
    """Raise ``CampaignExists`` unless a new campaign of this issue may start now.

    Never while another is unfinished (two would send the issue twice to everyone);
    after an earlier one finished, or the issue was sent, only with ``again``.
    """
    prior = conn.execute(
        select(C.c.id, C.c.status, C.c.finished_at)
        .where(C.c.issue_id == issue_id, C.c.is_test.is_(False))
        .order_by(C.c.id.desc())
    ).all()
    for row in prior:
        status = CampaignStatus(row.status)
        if status in UNFINISHED:
            raise CampaignExists(slug, campaign_id=row.id, status=status)
    if again:
        return
    last = prior[0] if prior else None
    sent = conn.scalar(select(I.c.status).where(I.c.id == issue_id)) == IssueStatus.SENT
    if last is not None or sent:
        raise CampaignExists(
            slug,
            campaign_id=last.id if last else None,
            status=CampaignStatus(last.status) if last else None,
            finished_at=last.finished_at if last else None,
        )


def has_audience(conn: Connection) -> bool:
    """Whether anybody is active: a campaign needs someone to send to."""
    return bool(conn.scalar(select(exists().where(S.c.status == SubscriberStatus.ACTIVE))))


def check_new_campaign(
    db: Database, slug: str, *, again: bool = False, audience: bool = True
) -> None:
    """``create_campaign``'s refusal ahead of time (before asking staff to confirm).

    ``audience=False`` leaves out the check that anybody is active (a send scheduled for
    later: the list may have grown by then, and the scheduler checks again).
    """
    with db.engine.connect() as conn:
        issue_id = conn.scalar(select(I.c.id).where(I.c.slug == slug))
        if issue_id is None:
            raise IssueNotFound(slug)
        _refuse_new_campaign(conn, issue_id, slug, again=again)
        if audience and not has_audience(conn):
            raise EmptyAudience(slug)


@dataclass(frozen=True)
class SendPlan:
    """What a send of an issue to the list would do, for staff to confirm before it starts."""

    slug: str
    subject: str
    issue_status: IssueStatus
    audience: int  # active subscribers now; the campaign takes its audience when it starts
    transport: str

    @property
    def ready(self) -> bool:
        """Staff marked the issue ready (or it went out before and is being sent again)."""
        return self.issue_status is not IssueStatus.DRAFT


def plan_send(db: Database, settings: Settings, slug: str, *, again: bool = False) -> SendPlan:
    """What ``create_campaign`` would start, checked the same way ahead of time.

    Raises ``IssueNotFound`` and ``CampaignExists`` as ``create_campaign`` would; the
    CLI and the admin both ask this before asking staff to confirm.
    """
    check_new_campaign(db, slug, again=again)
    with db.engine.connect() as conn:
        row = conn.execute(select(I.c.subject, I.c.status).where(I.c.slug == slug)).one_or_none()
    if row is None:
        raise IssueNotFound(slug)
    return SendPlan(
        slug=slug,
        subject=row.subject,
        issue_status=IssueStatus(row.status),
        audience=active_audience_size(db),
        transport=settings.transport,
    )


def create_campaign(
    db: Database,
    settings: Settings,
    slug: str,
    *,
    scheduled_at: datetime | None = None,
    again: bool = False,
) -> int:
    """A campaign for the issue, status ``scheduled``; its audience is taken when it starts.

    Refused (``CampaignExists``) while another campaign of the issue is unfinished, and
    after one finished (or the issue was sent) unless ``again``; ``EmptyAudience`` when
    nobody is active. The check and the insert are one transaction holding the issue's
    row (PostgreSQL: ``FOR UPDATE``; SQLite: the engine's ``BEGIN IMMEDIATE`` serialises
    writers), so two ``send`` commands racing create one campaign, not two.
    """
    with db.engine.begin() as conn:
        return create_campaign_on(conn, settings, slug, scheduled_at=scheduled_at, again=again)


def create_campaign_on(
    conn: Connection,
    settings: Settings,
    slug: str,
    *,
    scheduled_at: datetime | None = None,
    again: bool = False,
) -> int:
    """``create_campaign`` in the caller's transaction (the scheduler records the slot's
    occurrence in the same one)."""
    issue_id = conn.scalar(select(I.c.id).where(I.c.slug == slug).with_for_update())
    if issue_id is None:
        raise IssueNotFound(slug)
    _refuse_new_campaign(conn, issue_id, slug, again=again)
    if not has_audience(conn):
        raise EmptyAudience(slug)
    result = conn.execute(
        insert(C).values(
            issue_id=issue_id,
            status=CampaignStatus.SCHEDULED,
            transport=settings.transport,
            is_test=False,
            scheduled_at=scheduled_at,
            created_at=utcnow(),
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def _set_status(
    db: Database,
    campaign_id: int,
    new: CampaignStatus,
    allowed: Iterable[CampaignStatus],
    **values: Any,
) -> None:
    check_id(campaign_id)
    with db.engine.begin() as conn:
        done = conn.execute(
            update(C)
            .where(C.c.id == campaign_id, C.c.status.in_(list(allowed)))
            .values(status=new, **values)
        ).rowcount
        if done != 1:
            status = conn.scalar(select(C.c.status).where(C.c.id == campaign_id))
            if status is None:
                raise CampaignNotFound(campaign_id)
            raise WrongStatus(campaign_id, CampaignStatus(status))


def pause_campaign(db: Database, campaign_id: int) -> None:
    """Ask the sender to stop once the batches it has in flight are answered; ``resume``
    continues."""
    _set_status(
        db,
        campaign_id,
        CampaignStatus.PAUSED,
        (CampaignStatus.SCHEDULED, CampaignStatus.SENDING),
    )


def cancel_campaign(db: Database, campaign_id: int) -> None:
    """Stop for good after the batches in flight; rows never sent stay ``pending`` as a record."""
    _set_status(
        db,
        campaign_id,
        CampaignStatus.CANCELLED,
        (
            CampaignStatus.SCHEDULED,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
            CampaignStatus.FAILED,
        ),
        finished_at=utcnow(),
    )


def check_resume(db: Database, campaign_id: int) -> CampaignInfo:
    """The campaign, if a resume could continue it; ``WrongStatus`` if it is sent or cancelled.

    Asked before a resume so that staff hear "nothing to resume" at once; the resume
    itself checks again, atomically, when it takes the lease.
    """
    info = campaign_info(db, campaign_id)
    if info.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        raise WrongStatus(campaign_id, info.status)
    return info
