"""Campaign figures from events: what staff look at after a send (``campaign status``,
``stats``, and the admin dashboard's charts).

Each figure counts recipients, not events: an address opened twice is one open, a
bounce reported by SendGrid and again by reconcile is one bounce. Rates are shares of
the recipients the mail service accepted (``sent``); for SendGrid campaigns the
engagement rates are shares of those SendGrid reports as ``delivered``. For SMTP and
the outbox nothing reports deliveries: what the receiving server accepted counts as
delivered.

Complaints decide whether mailbox providers keep taking the list's mail: Gmail and
Yahoo throttle senders whose complaint rate passes 0.3%. ``COMPLAINT_LEVELS`` marks a
campaign past 0.1% with a warning and at 0.3% with an alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, String, cast, func, select

from digestmail.campaigns.info import counts
from digestmail.campaigns.tables import C, I
from digestmail.db import Database
from digestmail.models import DeliveryState, Event, EventKind


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ALARM = "alarm"


# (complaint rate reached, level), highest first.
COMPLAINT_LEVELS: tuple[tuple[float, Level], ...] = ((0.003, Level.ALARM), (0.001, Level.WARNING))

# The kinds counted per campaign, and the figure each becomes.
FIGURES = {
    EventKind.DELIVERED: "delivered",
    EventKind.BOUNCED: "bounced",
    EventKind.COMPLAINED: "complained",
    EventKind.OPENED: "opened",
    EventKind.CLICKED: "clicked",
    EventKind.UNSUBSCRIBED: "unsubscribed",
}


def complaint_level(rate: float) -> Level:
    for threshold, level in COMPLAINT_LEVELS:
        if rate > threshold or (level is Level.ALARM and rate >= threshold):
            return level
    return Level.OK


@dataclass(frozen=True)
class CampaignFigures:
    campaign_id: int
    issue_slug: str
    transport: str
    sent: int  # recipients the mail service accepted
    delivered: int
    bounced: int
    complained: int
    opened: int  # unique opens
    clicked: int  # unique clicks
    unsubscribed: int

    @staticmethod
    def _rate(part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    @property
    def rates(self) -> dict[str, float]:
        base = self.delivered or self.sent
        return {
            "delivered": self._rate(self.delivered, self.sent),
            "bounced": self._rate(self.bounced, self.sent),
            "complained": self._rate(self.complained, base),
            "opened": self._rate(self.opened, base),
            "clicked": self._rate(self.clicked, base),
            "unsubscribed": self._rate(self.unsubscribed, base),
        }

    @property
    def complaint_level(self) -> Level:
        return complaint_level(self.rates["complained"])

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "issue": self.issue_slug,
            "transport": self.transport,
            "sent": self.sent,
            "delivered": self.delivered,
            "bounced": self.bounced,
            "complained": self.complained,
            "unique_opens": self.opened,
            "unique_clicks": self.clicked,
            "unsubscribed": self.unsubscribed,
            "rates": {k: round(v, 6) for k, v in self.rates.items()},
            "complaint_level": self.complaint_level.value,
        }


def figures(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, CampaignFigures]:
    """Figures of each campaign, in two grouped queries whatever the count."""
    if not campaign_ids:
        return {}
    meta = {
        r.id: r
        for r in conn.execute(
            select(C.c.id, C.c.transport, I.c.slug)
            .select_from(C.join(I, I.c.id == C.c.issue_id))
            .where(C.c.id.in_(campaign_ids))
        )
    }
    ledger = counts(conn, list(meta))
    # One recipient: its ledger row, or (events from before custom args) its address.
    who = func.coalesce(cast(Event.delivery_id, String), func.lower(Event.email))
    found: dict[int, dict[str, int]] = {cid: {} for cid in meta}
    rows = conn.execute(
        select(Event.campaign_id, Event.kind, func.count(func.distinct(who)))
        .where(Event.campaign_id.in_(list(meta)), Event.kind.in_(list(FIGURES)))
        .group_by(Event.campaign_id, Event.kind)
    )
    for cid, kind, n in rows:
        if cid is not None:
            found[cid][FIGURES[EventKind(kind)]] = int(n)
    out: dict[int, CampaignFigures] = {}
    for cid, m in meta.items():
        sent = ledger[cid][DeliveryState.ACCEPTED.value]
        got = found[cid]
        delivered = got.get("delivered", 0) if m.transport == "sendgrid" else sent
        out[cid] = CampaignFigures(
            campaign_id=cid,
            issue_slug=m.slug,
            transport=m.transport,
            sent=sent,
            delivered=delivered,
            bounced=got.get("bounced", 0),
            complained=got.get("complained", 0),
            opened=got.get("opened", 0),
            clicked=got.get("clicked", 0),
            unsubscribed=got.get("unsubscribed", 0),
        )
    return out


def campaign_figures(db: Database, campaign_id: int) -> CampaignFigures | None:
    with db.engine.connect() as conn:
        return figures(conn, [campaign_id]).get(campaign_id)


def recent_figures(db: Database, last: int = 10) -> list[CampaignFigures]:
    """The last ``last`` campaigns that started (test sends excluded), oldest first."""
    with db.engine.connect() as conn:
        ids = list(
            conn.scalars(
                select(C.c.id)
                .where(C.c.is_test.is_(False), C.c.started_at.is_not(None))
                .order_by(C.c.id.desc())
                .limit(last)
            )
        )
        found = figures(conn, ids)
    return [found[cid] for cid in sorted(found)]
