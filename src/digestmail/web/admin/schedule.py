"""The schedule in the admin: the cadence and each one-off send, created, moved, skipped,
paused, continued or cancelled, and what became of the recent sends.

The same ``scheduling`` functions as ``digestmail schedule …`` (``add_cadence``,
``add_one_off``, ``move``, ``skip``, ``pause``, ``resume``, ``cancel``, ``overview``,
``history``), with the same refusals, said in words (``words.schedule_problem``). The
scheduler picks a change up within seconds. A local time the clocks skip or pass twice
is not refused for good: the page offers the two moments it could mean
(``words.time_choice``), and the one chosen is sent with its offset.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from digestmail import issues, scheduling
from digestmail.campaigns import CampaignError
from digestmail.db import Database
from digestmail.models import ID_MAX, IssueStatus, ScheduleKind, ScheduleStatus, utcnow
from digestmail.notify import when as zoned
from digestmail.scheduling import ScheduleError, ScheduleInfo, ScheduleNotFound
from digestmail.scheduling.times import WEEKDAYS, zone
from digestmail.web.admin import words
from digestmail.web.admin.common import PREFIX, Notice, current_staff, form_text, page, redirect
from digestmail.web.deps import database_of, settings_of

router = APIRouter(dependencies=[Depends(current_staff)])

BASE = f"{PREFIX}/schedule"
# The coming sends of a cadence listed on its page, each with its Skip button.
COMING = 6
# What became of a schedule's sends, on its page.
HISTORY = 20


@cache
def zone_names() -> list[str]:
    """Time zones to suggest while typing (any IANA name is accepted)."""
    return sorted(available_timezones())


def _moment(form_date: str, form_time: str) -> str:
    """The form's date and time as the one string ``scheduling`` reads."""
    return f"{form_date.strip()}T{form_time.strip()}"


def _list_page(
    request: Request,
    *,
    everything: bool = False,
    issue: str = "",
    status_code: int = 200,
    notice: Notice | None = None,
    **context: Any,
) -> Response:
    db = database_of(request)
    settings = settings_of(request)
    seen = scheduling.overview(db, everything=everything)
    unsent = [i for i in issues.list_issues(db) if i.status is not IssueStatus.SENT]
    today = utcnow().astimezone(zone(settings.timezone)).date()
    defaults: dict[str, Any] = {
        "once": {
            "issue": issue,
            "date": today.isoformat(),
            "time": "09:00",
            "tz": settings.timezone,
        },
        "cadence": {
            "every": "2",
            "unit": "week",
            "weekday": "friday",
            "time": "09:00",
            "tz": settings.timezone,
            "start": "",
        },
        "choice": None,
    }
    return page(
        request,
        "schedule.html",
        status_code=status_code,
        notice=notice,
        section="schedule",
        seen=seen,
        everything=everything,
        unsent=unsent,
        weekdays=WEEKDAYS,
        zones=zone_names(),
        now=utcnow(),
        **{**defaults, **context},
        **_shared(),
    )


def _shared() -> dict[str, Any]:
    return {
        "rhythm": words.rhythm,
        "outcome": words.outcome,
        "zoned": zoned,
        "ago": words.ago,
        "status_words": words.SCHEDULE_STATUS,
        "issue_status": words.ISSUE_STATUS,
    }


@router.get(BASE)
def schedule_list(request: Request, all: bool = False, issue: str = "") -> Response:
    """``all``: also what is done or cancelled; ``issue``: the one-off form's issue."""
    return _list_page(request, everything=all, issue=issue)


# --- new schedules -----------------------------------------------------------------------


@router.post(f"{BASE}/once")
async def add_once(request: Request) -> Response:
    form = await request.form()
    values = {k: form_text(form, k) for k in ("issue", "date", "time", "tz", "moment")}
    return await run_in_threadpool(_add_once, request, values)


def _add_once(request: Request, values: dict[str, str]) -> Response:
    db, settings = database_of(request), settings_of(request)
    at = values["moment"] or _moment(values["date"], values["time"])
    try:
        info = scheduling.add_one_off(db, settings, values["issue"], at=at, tz=values["tz"] or None)
    except (ScheduleError, CampaignError) as exc:
        return _list_page(
            request,
            status_code=422,
            notice=Notice(words.schedule_problem(exc, choosing=True), "problem"),
            once=values,
            choice=words.time_choice(exc),
        )
    assert info.run_at is not None
    return redirect(
        request,
        f"{BASE}/{info.id}",
        f"Scheduled: “{info.issue_title}” goes out {zoned(info.run_at, info.zone)}. It is "
        "marked ready to send.",
    )


@router.post(f"{BASE}/cadence")
async def add_cadence(request: Request) -> Response:
    form = await request.form()
    keys = ("every", "unit", "weekday", "time", "tz", "start")
    values = {k: form_text(form, k) for k in keys}
    return await run_in_threadpool(_add_cadence, request, values)


def _add_cadence(request: Request, values: dict[str, str]) -> Response:
    db, settings = database_of(request), settings_of(request)
    weekly = values["unit"] != "day"
    try:
        info = scheduling.add_cadence(
            db,
            settings,
            every=f"{values['every'].strip()}{'w' if weekly else 'd'}",
            on=values["weekday"] if weekly else None,
            at=values["time"],
            tz=values["tz"] or None,
            start=values["start"] or None,
        )
    except ScheduleError as exc:
        return _list_page(
            request,
            status_code=422,
            notice=Notice(words.schedule_problem(exc), "problem"),
            cadence=values,
        )
    said = words.rhythm(info)
    first = zoned(info.next_run, info.zone) if info.next_run else "not yet known"
    sends = (
        f"It will send “{info.issue_title}”, the oldest issue ready to send."
        if info.issue_slug
        else "No issue is ready yet: mark one ready to send before then, or nothing goes out."
    )
    return redirect(
        request,
        f"{BASE}/{info.id}",
        f"Scheduled: {said[0].lower()}{said[1:]}. The first send is {first}. {sends}",
    )


# --- one schedule ------------------------------------------------------------------------


def _info(db: Database, schedule_id: int) -> ScheduleInfo:
    if not 0 < schedule_id <= ID_MAX:
        raise HTTPException(404)
    try:
        return scheduling.schedule_info(db, schedule_id)
    except ScheduleNotFound:
        raise HTTPException(404) from None


def _schedule_page(
    request: Request,
    schedule_id: int,
    *,
    status_code: int = 200,
    notice: Notice | None = None,
    **context: Any,
) -> Response:
    db = database_of(request)
    info = _info(db, schedule_id)
    local = info.local(info.run_at) if info.run_at else None
    defaults: dict[str, Any] = {
        "move": {
            "date": local.date().isoformat() if local else "",
            "time": local.strftime("%H:%M") if local else "",
            "tz": info.zone,
        },
        "choice": None,
    }
    return page(
        request,
        "schedule_one.html",
        status_code=status_code,
        notice=notice,
        section="schedule",
        info=info,
        coming=info.coming(COMING) if info.kind is ScheduleKind.CADENCE else [],
        history=scheduling.history(db, schedule_id=info.id, limit=HISTORY),
        seeking=info.status in (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED),
        zones=zone_names(),
        now=utcnow(),
        **{**defaults, **context},
        **_shared(),
    )


@router.get(f"{BASE}/{{schedule_id}}")
def schedule_page(request: Request, schedule_id: int) -> Response:
    return _schedule_page(request, schedule_id)


def _back(schedule_id: int) -> str:
    return f"{BASE}/{schedule_id}"


def _change(
    request: Request,
    schedule_id: int,
    operation: Callable[[Database, int], ScheduleInfo],
    said: Callable[[ScheduleInfo], str],
) -> Response:
    try:
        info = operation(database_of(request), schedule_id)
    except ScheduleError as exc:
        return redirect(request, _back(schedule_id), words.schedule_problem(exc), "problem")
    return redirect(request, _back(schedule_id), said(info))


def _next(info: ScheduleInfo) -> str:
    return f" The next send is {zoned(info.next_run, info.zone)}." if info.next_run else ""


@router.post(f"{BASE}/{{schedule_id}}/pause")
def pause(request: Request, schedule_id: int) -> Response:
    return _change(
        request,
        schedule_id,
        scheduling.pause,
        lambda _info: (
            "Paused: nothing is sent until you press Continue. Sends whose time "
            "passes meanwhile are not made up."
        ),
    )


@router.post(f"{BASE}/{{schedule_id}}/resume")
def resume(request: Request, schedule_id: int) -> Response:
    return _change(
        request, schedule_id, scheduling.resume, lambda info: f"Continuing.{_next(info)}"
    )


@router.get(f"{BASE}/{{schedule_id}}/cancel")
def confirm_cancel(request: Request, schedule_id: int) -> Response:
    info = _info(database_of(request), schedule_id)
    return page(request, "schedule_cancel.html", section="schedule", info=info, rhythm=words.rhythm)


@router.post(f"{BASE}/{{schedule_id}}/cancel")
def cancel(request: Request, schedule_id: int) -> Response:
    return _change(
        request,
        schedule_id,
        scheduling.cancel,
        lambda _info: "Cancelled: it sends nothing more. What it sent stays listed below.",
    )


@router.post(f"{BASE}/{{schedule_id}}/skip")
async def skip(request: Request, schedule_id: int) -> Response:
    form = await request.form()
    day = form_text(form, "on")
    return await run_in_threadpool(_skip, request, schedule_id, day)


def _skip(request: Request, schedule_id: int, day: str) -> Response:
    try:
        info, slot = scheduling.skip(database_of(request), schedule_id, on=day)
    except ScheduleError as exc:
        return redirect(request, _back(schedule_id), words.schedule_problem(exc), "problem")
    return redirect(
        request,
        _back(schedule_id),
        f"The send of {zoned(slot, info.zone)} will not go out.{_next(info)}",
    )


@router.post(f"{BASE}/{{schedule_id}}/move")
async def move(request: Request, schedule_id: int) -> Response:
    form = await request.form()
    values = {k: form_text(form, k) for k in ("date", "time", "tz", "moment")}
    return await run_in_threadpool(_move, request, schedule_id, values)


def _move(request: Request, schedule_id: int, values: dict[str, str]) -> Response:
    at = values["moment"] or _moment(values["date"], values["time"])
    try:
        info = scheduling.move(database_of(request), schedule_id, at=at, tz=values["tz"] or None)
    except ScheduleError as exc:
        return _schedule_page(
            request,
            schedule_id,
            status_code=422,
            notice=Notice(words.schedule_problem(exc, choosing=True), "problem"),
            move=values,
            choice=words.time_choice(exc),
        )
    assert info.run_at is not None
    return redirect(
        request,
        _back(schedule_id),
        f"Moved: “{info.issue_title}” now goes out {zoned(info.run_at, info.zone)}.",
    )
