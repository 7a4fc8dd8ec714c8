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

``list_growth`` counts the list over time (the dashboard's second chart): how many
people were subscribed at the end of each week or month, and how many joined and left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy import union_all as sql_union_all

from digestmail.campaigns.info import counts
from digestmail.campaigns.tables import C, I
from digestmail.db import Database
from digestmail.models import (
    DeliveryState,
    Event,
    EventKind,
    Subscriber,
    SubscriberChange,
    SubscriberStatus,
    utcnow,
)


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
    volume: str  # the issue's volume, e.g. "4.1": a short label for charts
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
            select(C.c.id, C.c.transport, I.c.slug, I.c.volume)
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
            volume=m.volume,
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


# --- the list over time -----------------------------------------------------------------


class Period(StrEnum):
    WEEK = "week"  # Monday to Sunday
    MONTH = "month"


# The most periods one chart asks for (ten years of months).
PERIODS_MAX = 120
# Numbers written into the SQL, not bound: PostgreSQL must see them as integers.
_ONE: ColumnElement[int] = literal_column("1", Integer)
_ZERO: ColumnElement[int] = literal_column("0", Integer)


@dataclass(frozen=True)
class GrowthPoint:
    """One week or month of the list."""

    start: date  # its first day, on the calendar of the zone asked for
    active: int  # subscribed at its end (for the current period: now)
    joined: int  # became subscribed during it (confirmed, added, or brought back)
    left: int  # stopped being subscribed (unsubscribed, bounced, complained)


def period_start(day: date, period: Period) -> date:
    """The first day of the week (Monday) or month ``day`` is in."""
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _period_before(start: date, period: Period) -> date:
    if period is Period.WEEK:
        return start - timedelta(days=7)
    return (start - timedelta(days=1)).replace(day=1)


def _moves() -> Any:
    """Every moment someone became subscribed (+1) or stopped being subscribed (-1).

    From the history of status changes; for subscribers from before the history was
    kept, from their dates: subscribed when confirmed (or added), left when they
    unsubscribed (or, bounced or complained, when their row last changed); and for those
    whose history starts while they were subscribed, subscribed since they were added.
    Erased people are gone from every count.
    """
    sc, sub = SubscriberChange, Subscriber
    active = SubscriberStatus.ACTIVE
    has_history = exists().where(sc.subscriber_id == sub.id)
    first_old = (
        select(sc.old_status)
        .where(sc.subscriber_id == sub.id)
        .order_by(sc.at, sc.id)
        .limit(1)
        .scalar_subquery()
    )
    gone = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
    return sql_union_all(
        # Changes never go from a status to itself: into active is +1, out of it -1.
        select(
            sc.at.label("at"),
            case((sc.new_status == active, _ONE), else_=literal_column("-1")).label("delta"),
        ).where(or_(sc.new_status == active, sc.old_status == active)),
        select(func.coalesce(sub.confirmed_at, sub.created_at), _ONE).where(
            ~has_history, or_(sub.status == active, sub.confirmed_at.is_not(None))
        ),
        select(func.coalesce(sub.unsubscribed_at, sub.updated_at), literal_column("-1")).where(
            ~has_history, sub.status.in_(gone), sub.confirmed_at.is_not(None)
        ),
        select(sub.created_at, _ONE).where(and_(has_history, first_old == active)),
    ).subquery()


def list_growth(
    db: Database,
    *,
    period: Period = Period.MONTH,
    periods: int = 12,
    zone: str = "UTC",
    now: datetime | None = None,
) -> list[GrowthPoint]:
    """The list over the last ``periods`` weeks or months (the current one included),
    oldest first, on the calendar of ``zone``.

    Starts at the first period with anything to show: a list younger than the chart has
    fewer points, and a list nobody ever subscribed to has none. One grouped query
    whatever the size of the list.
    """
    now = now or utcnow()
    periods = max(1, min(periods, PERIODS_MAX))
    tz = ZoneInfo(zone)
    starts = [period_start(now.astimezone(tz).date(), period)]
    while len(starts) < periods:
        starts.insert(0, _period_before(starts[0], period))
    bounds = [datetime.combine(d, time(0), tz) for d in starts]
    moves = _moves()
    # Bucket -1: before the chart (the count it starts from); i: in period i.
    bucket = case(
        *((moves.c.at < b, literal_column(str(i - 1))) for i, b in enumerate(bounds)),
        else_=literal_column(str(len(bounds) - 1)),
    ).label("bucket")
    inner = select(bucket, moves.c.delta).where(moves.c.at <= now).subquery()
    query = select(
        inner.c.bucket,
        func.sum(case((inner.c.delta > 0, _ONE), else_=_ZERO)),
        func.sum(case((inner.c.delta < 0, _ONE), else_=_ZERO)),
    ).group_by(inner.c.bucket)
    with db.engine.connect() as conn:
        found = {int(b): (int(j), int(left)) for b, j, left in conn.execute(query)}
    joined_before, left_before = found.pop(-1, (0, 0))
    count = joined_before - left_before
    points: list[GrowthPoint] = []
    for i, start in enumerate(starts):
        joined, left = found.get(i, (0, 0))
        count += joined - left
        if count or joined or left or points:
            points.append(GrowthPoint(start, count, joined, left))
    return points
