"""The admin's home page: what is being sent now, the list in numbers, where to go next.

The dashboard of the scheduling and bounce-tracking work (the next scheduled send,
charts of past issues and of list growth, warnings) takes its place here.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from digestmail import campaigns, issues, subscribers
from digestmail.models import CampaignStatus, IssueStatus
from digestmail.web.admin import words
from digestmail.web.admin.campaigns import progress
from digestmail.web.admin.common import PREFIX, current_staff, page
from digestmail.web.admin.subscribers import STATUS_WORDS
from digestmail.web.deps import database_of

router = APIRouter(dependencies=[Depends(current_staff)])

# Sendings that still need attention: going on, or stopped part-way.
OPEN = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)


@router.get(PREFIX)
def home(request: Request) -> Response:
    db = database_of(request)
    recent = campaigns.list_campaigns(db, limit=20)
    current = [i for i in recent if i.status in OPEN]
    finished = [i for i in recent if i.status not in OPEN][:5]
    stored = issues.list_issues(db)
    with db.session() as session:
        counts = subscribers.count_by_status(session)
    return page(
        request,
        "home.html",
        section="home",
        current=[(i, progress(i)) for i in current],
        finished=[(i, progress(i)) for i in finished],
        ready=[i for i in stored if i.status is IssueStatus.READY],
        drafts=[i for i in stored if i.status is IssueStatus.DRAFT],
        counts=counts,
        status_words=STATUS_WORDS,
        when=words.when,
    )
