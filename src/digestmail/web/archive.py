"""The public archive: sent issues on the web, where every email's web-view link points.

The stored HTML is the email itself with its placeholders; here they are filled for
an anonymous reader (no name, and an unsubscribe link that explains where the
personal one is, since a web page cannot know who is reading).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from digestmail.models import Issue, IssueStatus
from digestmail.placeholders import substitute
from digestmail.render import web_reader_values
from digestmail.web.deps import database_of, pages_of, settings_of

router = APIRouter()


@router.get("/archive", response_class=HTMLResponse)
def archive(request: Request) -> HTMLResponse:
    with database_of(request).session() as session:
        issues = session.scalars(
            select(Issue)
            .where(Issue.status == IssueStatus.SENT)
            .order_by(Issue.sent_at.desc(), Issue.id.desc())
        ).all()
        rows = [
            {"slug": i.slug, "volume": i.volume, "title": i.title, "date": i.issue_date}
            for i in issues
        ]
    return pages_of(request).render(request, "archive.html", issues=rows)


@router.get("/issues/{slug}", response_class=HTMLResponse)
def issue_page(request: Request, slug: str) -> HTMLResponse:
    settings = settings_of(request)
    with database_of(request).session() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == slug))
        if issue is None or issue.status is not IssueStatus.SENT:
            # Drafts are not public, and saying so would reveal they exist.
            raise HTTPException(status_code=404, detail="No such issue")
        html = issue.html
    return HTMLResponse(substitute(html, web_reader_values(settings, slug)))


@router.get("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_help(request: Request) -> HTMLResponse:
    """Where a web-view reader's "Unsubscribe" leads: their own link is in their email."""
    return pages_of(request).render(request, "unsubscribe_help.html")
