"""Reading campaigns: what ``campaign list`` and ``campaign status`` (and the admin) show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from digestmail.campaigns.batches import in_flight_counts
from digestmail.campaigns.errors import CampaignNotFound
from digestmail.campaigns.tables import C, D, I, S
from digestmail.db import Database
from digestmail.models import (
    ID_MAX,
    CampaignStatus,
    DeliveryState,
    StopReason,
    SubscriberStatus,
    utcnow,
)


@dataclass(frozen=True)
class CampaignInfo:
    """One campaign with its ledger counted (also as JSON)."""

    id: int
    issue_slug: str
    status: CampaignStatus
    transport: str
    counts: dict[str, int]
    # Rows handed to the transport more than once: the batch in flight when a sender
    # died. These recipients may have received the issue twice.
    resent: int
    # Pending after a temporary failure, waiting for their next try.
    retrying: int
    # Rejected after one or more temporary failures (most: the tries ran out).
    rejected_after_retries: int
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    # Why the last sender stopped short of sent, the detail in the transport's or the
    # check's words, and the facts the reason needs (see ``models.StopReason``).
    error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    error_reason: StopReason | None = None
    error_data: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def sender_alive(self) -> bool:
        return (
            self.lease_owner is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > utcnow()
        )

    @property
    def in_flight_unknown(self) -> int:
        """Rows claimed by a sender that is gone: they are sent again on resume."""
        return 0 if self.sender_alive else self.counts.get(DeliveryState.CLAIMED.value, 0)

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "issue": self.issue_slug,
            "status": self.status.value,
            "transport": self.transport,
            "total": self.total,
            "counts": self.counts,
            "resent": self.resent,
            "in_flight_unknown": self.in_flight_unknown,
            "retrying": self.retrying,
            "rejected_after_retries": self.rejected_after_retries,
            "created_at": iso(self.created_at),
            "scheduled_at": iso(self.scheduled_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
            "error_reason": self.error_reason.value if self.error_reason else None,
            "error_data": self.error_data,
            "sender": self.lease_owner if self.sender_alive else None,
        }


def counts(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Ledger rows per campaign and state (every state present, zeros included);
    ``claimed`` are the rows in flight."""
    out = {cid: {s.value: 0 for s in DeliveryState} for cid in campaign_ids}
    if not campaign_ids:
        return out
    rows = conn.execute(
        select(D.c.campaign_id, D.c.state, func.count())
        .where(D.c.campaign_id.in_(campaign_ids))
        .group_by(D.c.campaign_id, D.c.state)
    )
    for cid, state, n in rows:
        out[cid][DeliveryState(state).value] = int(n)
    # Rows in flight are pending rows held by an open batch: counted apart.
    for cid, n in conn.execute(in_flight_counts(campaign_ids)):
        out[cid][DeliveryState.PENDING.value] -= int(n)
        out[cid][DeliveryState.CLAIMED.value] += int(n)
    return out


def _resent(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, int]:
    """Rows handed over again after a try that may have delivered (not a temporary failure)."""
    out = dict.fromkeys(campaign_ids, 0)
    if campaign_ids:
        rows = conn.execute(
            select(D.c.campaign_id, func.count())
            .where(D.c.campaign_id.in_(campaign_ids), D.c.attempts - D.c.temp_failures > 1)
            .group_by(D.c.campaign_id)
        )
        for cid, n in rows:
            out[cid] = int(n)
    return out


def _after_temporary(
    conn: Connection, campaign_ids: Sequence[int]
) -> dict[int, dict[DeliveryState, int]]:
    """Per campaign, rows that had a temporary failure, by their state now; those a
    retry in flight holds are ``claimed`` (as ``counts`` has them), not still waiting."""
    out: dict[int, dict[DeliveryState, int]] = {cid: {} for cid in campaign_ids}
    if campaign_ids:
        rows = conn.execute(
            select(D.c.campaign_id, D.c.state, func.count())
            .where(D.c.campaign_id.in_(campaign_ids), D.c.temp_failures > 0)
            .group_by(D.c.campaign_id, D.c.state)
        )
        for cid, state, n in rows:
            out[cid][DeliveryState(state)] = int(n)
        for cid, n in conn.execute(in_flight_counts(campaign_ids, failed_before=True)):
            out[cid][DeliveryState.PENDING] -= int(n)  # they are among the pending
            out[cid][DeliveryState.CLAIMED] = int(n)
    return out


def infos(
    conn: Connection, where: ColumnElement[bool], limit: int | None = None
) -> list[CampaignInfo]:
    query = (
        select(C, I.c.slug)
        .select_from(C.join(I, I.c.id == C.c.issue_id))
        .where(where)
        .order_by(C.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    ids = [r.id for r in rows]
    counted = counts(conn, ids)
    resent = _resent(conn, ids)
    temporary = _after_temporary(conn, ids)
    return [
        CampaignInfo(
            id=r.id,
            issue_slug=r.slug,
            status=CampaignStatus(r.status),
            transport=r.transport,
            counts=counted[r.id],
            resent=resent[r.id],
            retrying=temporary[r.id].get(DeliveryState.PENDING, 0),
            rejected_after_retries=temporary[r.id].get(DeliveryState.REJECTED, 0),
            created_at=r.created_at,
            scheduled_at=r.scheduled_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            error=r.error,
            error_reason=StopReason(r.error_reason) if r.error_reason else None,
            error_data=dict(r.error_data or {}),
            lease_owner=r.lease_owner,
            lease_expires_at=r.lease_expires_at,
        )
        for r in rows
    ]


def check_id(campaign_id: int) -> None:
    """Refuse an id no row can have (a typo of twenty digits) before it reaches the driver."""
    if not 0 < campaign_id <= ID_MAX:
        raise CampaignNotFound(campaign_id)


def campaign_info(db: Database, campaign_id: int) -> CampaignInfo:
    check_id(campaign_id)
    with db.engine.connect() as conn:
        found = infos(conn, C.c.id == campaign_id)
    if not found:
        raise CampaignNotFound(campaign_id)
    return found[0]


def list_campaigns(db: Database, *, limit: int = 100) -> list[CampaignInfo]:
    """Newest first; test sends are not campaigns and never appear here."""
    with db.engine.connect() as conn:
        return infos(conn, C.c.is_test.is_(False), limit)


def active_audience_size(db: Database) -> int:
    with db.engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(S.c.status == SubscriberStatus.ACTIVE))
    return int(n or 0)
