"""Sendings (campaigns) in the admin: their progress and figures; pause, continue, cancel.

The same ``campaigns`` functions as ``campaign list|status|pause|resume|cancel``, and
the figures of ``campaign status`` (``stats.campaign_figures``: delivered, bounced,
complaints, opens, clicks, unsubscribes, with rates); a continued campaign is sent in
the background (``runner.CampaignRunner``) so that the page answers at once, and
``progress.json`` lets the page follow it live.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from digestmail import campaigns, stats
from digestmail.campaigns import CampaignError, CampaignInfo, CampaignNotFound
from digestmail.models import CampaignStatus, DeliveryState
from digestmail.web.admin import words
from digestmail.web.admin.common import PREFIX, current_staff, page, redirect
from digestmail.web.admin.runner import CampaignRunner
from digestmail.web.deps import database_of

router = APIRouter(dependencies=[Depends(current_staff)])

LIVE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)


def progress(info: CampaignInfo) -> dict[str, Any]:
    """What a page shows of a campaign's progress (also its live JSON)."""
    c = info.counts
    left = c[DeliveryState.PENDING.value] + c[DeliveryState.CLAIMED.value]
    done = info.total - left
    return {
        "id": info.id,
        "issue": info.issue_slug,
        "status": info.status.value,
        "status_label": words.STATUS[info.status],
        "live": info.status in LIVE,
        "total": info.total,
        "done": done,
        "sent": c[DeliveryState.ACCEPTED.value],
        "failed": c[DeliveryState.REJECTED.value],
        "skipped": c[DeliveryState.SKIPPED.value],
        "left": left,
        "percent": round(100 * done / info.total) if info.total else 0,
    }


def _info(request: Request, campaign_id: int) -> CampaignInfo:
    try:
        return campaigns.campaign_info(database_of(request), campaign_id)
    except CampaignNotFound:
        raise HTTPException(404) from None


@router.get(f"{PREFIX}/campaigns")
def campaign_list(request: Request) -> Response:
    infos = campaigns.list_campaigns(database_of(request))
    return page(
        request,
        "campaigns.html",
        section="campaigns",
        rows=[(i, progress(i)) for i in infos],
        when=words.when,
    )


@router.get(f"{PREFIX}/campaigns/{{campaign_id}}")
def campaign_page(request: Request, campaign_id: int) -> Response:
    info = _info(request, campaign_id)
    figures = stats.campaign_figures(database_of(request), campaign_id)
    return page(
        request,
        "campaign.html",
        section="campaigns",
        info=info,
        p=progress(info),
        figures=figures if info.started_at else None,
        percent=words.percent,
        complaints=words.complaints(figures.complaint_level) if figures else None,
        why=words.stop_reason(info),
        when=words.when,
        can_pause=info.status in LIVE,
        can_resume=info.status in (CampaignStatus.PAUSED, CampaignStatus.FAILED)
        or (info.status is CampaignStatus.SENDING and not info.sender_alive),
        can_cancel=info.status not in (CampaignStatus.SENT, CampaignStatus.CANCELLED),
    )


@router.get(f"{PREFIX}/campaigns/{{campaign_id}}/progress.json")
def campaign_progress(request: Request, campaign_id: int) -> JSONResponse:
    return JSONResponse(progress(_info(request, campaign_id)))


def _back(campaign_id: int) -> str:
    return f"{PREFIX}/campaigns/{campaign_id}"


@router.post(f"{PREFIX}/campaigns/{{campaign_id}}/pause")
def pause(request: Request, campaign_id: int) -> Response:
    try:
        campaigns.pause_campaign(database_of(request), campaign_id)
    except CampaignError as exc:
        return redirect(request, _back(campaign_id), words.campaign_problem(exc), "problem")
    return redirect(
        request,
        _back(campaign_id),
        "Paused. The messages already on their way go out; nobody else gets it until you "
        "press Continue.",
    )


@router.post(f"{PREFIX}/campaigns/{{campaign_id}}/resume")
def resume(request: Request, campaign_id: int) -> Response:
    db = database_of(request)
    try:
        info = campaigns.check_resume(db, campaign_id)
    except CampaignError as exc:
        return redirect(request, _back(campaign_id), words.campaign_problem(exc), "problem")
    if info.sender_alive and info.status is CampaignStatus.SENDING:
        return redirect(request, _back(campaign_id), "It is being sent right now.")
    runner: CampaignRunner = request.app.state.campaign_runner
    refused = runner.start(campaign_id, resume=True)
    if refused is not None:
        return redirect(request, _back(campaign_id), words.campaign_problem(refused), "problem")
    return redirect(request, _back(campaign_id), "Sending again, from where it stopped.")


@router.get(f"{PREFIX}/campaigns/{{campaign_id}}/cancel")
def confirm_cancel(request: Request, campaign_id: int) -> Response:
    info = _info(request, campaign_id)
    return page(request, "campaign_cancel.html", section="campaigns", info=info, p=progress(info))


@router.post(f"{PREFIX}/campaigns/{{campaign_id}}/cancel")
def cancel(request: Request, campaign_id: int) -> Response:
    try:
        campaigns.cancel_campaign(database_of(request), campaign_id)
    except CampaignError as exc:
        return redirect(request, _back(campaign_id), words.campaign_problem(exc), "problem")
    return redirect(
        request,
        _back(campaign_id),
        "Cancelled. Nobody else will get this sending; who got it stays on record.",
    )
