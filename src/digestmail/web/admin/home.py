"""The admin's home page, the dashboard: what needs attention, the next scheduled send
and what it will send, what is being sent now, the last issues side by side and the
list over time, as charts.

Every figure comes from below (``attention``, ``scheduling``, ``stats``); here they are
put into words and drawn (``charts``). ``state.json`` lets the open page notice a
sending that starts or ends, and reload itself to show it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from digestmail import attention, campaigns, issues, scheduling, stats, subscribers
from digestmail.campaigns import CampaignInfo
from digestmail.models import CampaignStatus, IssueStatus, utcnow
from digestmail.notify import when as zoned
from digestmail.scheduling import ScheduleInfo
from digestmail.stats import CampaignFigures, GrowthPoint, Period
from digestmail.web.admin import charts, words
from digestmail.web.admin.campaigns import progress
from digestmail.web.admin.common import PREFIX, current_staff, page
from digestmail.web.admin.subscribers import STATUS_WORDS
from digestmail.web.deps import database_of, settings_of

router = APIRouter(dependencies=[Depends(current_staff)])

# Sendings that still need attention: going on, or stopped part-way.
OPEN = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)
# How many sendings the "last issues" chart puts side by side.
LAST_ISSUES = 6
# The list over the last 12 weeks, or months.
GROWTH_PERIODS = 12

# The figures of the "last issues" chart, in order: (field, heading).
FIGURES = (
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("bounced", "Bounced"),
    ("complained", "Marked as spam"),
    ("opened", "Opened"),
    ("clicked", "Clicked"),
)
PERIOD_WORDS = {Period.WEEK: "week", Period.MONTH: "month"}


def _period_label(point: GrowthPoint, period: Period) -> str:
    return f"{point.start:%d %b}" if period is Period.WEEK else f"{point.start:%b %Y}"


def issue_charts(figures: list[CampaignFigures]) -> list[dict[str, Any]]:
    """One small bar chart per figure, the sendings side by side in each (oldest first)."""
    panels = []
    for field, heading in FIGURES:
        points = [(f.volume, int(getattr(f, field))) for f in figures]
        said = "; ".join(f"Vol. {volume}: {charts.number(v)}" for volume, v in points)
        panels.append(
            {
                "field": field,
                "heading": heading,
                "chart": charts.bar_chart(points, width=240, height=150),
                "description": f"{heading}, by issue, oldest first. {said}.",
            }
        )
    return panels


def growth_chart(points: list[GrowthPoint], period: Period) -> dict[str, Any]:
    labels = [_period_label(p, period) for p in points]
    said = "; ".join(
        f"{label}: {charts.number(p.active)}" for label, p in zip(labels, points, strict=True)
    )
    return {
        "chart": charts.bar_chart(
            [(label, p.active) for label, p in zip(labels, points, strict=True)],
            width=560,
            height=240,
            values_on_bars=False,
            grid=True,
            max_labels=6,
        ),
        "description": (
            f"Subscribed at the end of each {PERIOD_WORDS[period]}, oldest first. {said}."
        ),
        "labels": labels,
    }


def _state(recent: list[CampaignInfo], upcoming: ScheduleInfo | None) -> str:
    """What the page shows that changes by itself: the sendings and the next send."""
    parts = [f"{i.id}:{i.status.value}" for i in recent]
    if upcoming is not None and upcoming.next_run is not None:
        parts.append(f"next:{upcoming.id}:{upcoming.next_run.isoformat()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _period(value: str) -> Period:
    return Period.WEEK if value == Period.WEEK.value else Period.MONTH


@router.get(PREFIX)
def home(request: Request, growth: str = "") -> Response:
    db = database_of(request)
    settings = settings_of(request)
    now = utcnow()
    period = _period(growth)
    recent = campaigns.list_campaigns(db, limit=20)
    current = [i for i in recent if i.status in OPEN]
    finished = [i for i in recent if i.status not in OPEN][:5]
    stored = issues.list_issues(db)
    with db.session() as session:
        counts = subscribers.count_by_status(session)
    upcoming = scheduling.next_send(db, now=now)
    figures = stats.recent_figures(db, last=LAST_ISSUES)
    points = stats.list_growth(
        db, period=period, periods=GROWTH_PERIODS, zone=settings.timezone, now=now
    )
    concerns = attention.concerns(db, now=now)
    return page(
        request,
        "home.html",
        section="home",
        now=now,
        state=_state(recent, upcoming),
        concerns=[(c, words.concern(c)) for c in concerns],
        level_words=words.LEVEL,
        upcoming=upcoming,
        rhythm=words.rhythm,
        zoned=zoned,
        ago=words.ago,
        current=[(i, progress(i)) for i in current],
        finished=[(i, progress(i)) for i in finished],
        ready=[i for i in stored if i.status is IssueStatus.READY],
        drafts=[i for i in stored if i.status is IssueStatus.DRAFT],
        counts=counts,
        status_words=STATUS_WORDS,
        when=words.when,
        figures=figures,
        panels=issue_charts(figures),
        percent=words.percent,
        sendgrid=any(f.transport == "sendgrid" for f in figures),
        period=period.value,
        period_word=PERIOD_WORDS[period],
        growth=points,
        growth_chart=growth_chart(points, period) if points else None,
        zone=settings.timezone,
    )


@router.get(f"{PREFIX}/state.json")
def state(request: Request) -> JSONResponse:
    db = database_of(request)
    recent = campaigns.list_campaigns(db, limit=20)
    return JSONResponse({"state": _state(recent, scheduling.next_send(db))})
