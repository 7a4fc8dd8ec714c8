"""The public archive: sent issues on the web, where every email's web-view link points.

The stored HTML is the email itself with its placeholders; here they are filled for
an anonymous reader (no name, and an unsubscribe link that explains where the
personal one is, since a web page cannot know who is reading).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from digestmail.feed import FEED_PATH
from digestmail.issues import published_issue, published_issues
from digestmail.placeholders import substitute
from digestmail.render import web_reader_values
from digestmail.web.deps import database_of, pages_of, settings_of

router = APIRouter()


@router.get("/archive", response_class=HTMLResponse)
def archive(request: Request) -> HTMLResponse:
    rows = [
        {"slug": i.slug, "volume": i.volume, "title": i.title, "date": i.issue_date}
        for i in published_issues(database_of(request))
    ]
    return pages_of(request).render(request, "archive.html", issues=rows, feed_path=FEED_PATH)


@router.get("/issues/{slug}", response_class=HTMLResponse)
def issue_page(request: Request, slug: str) -> HTMLResponse:
    settings = settings_of(request)
    issue = published_issue(database_of(request), slug)
    if issue is None:
        # Drafts are not public, and saying so would reveal they exist.
        raise HTTPException(status_code=404, detail="No such issue")
    return HTMLResponse(substitute(issue.html, web_reader_values(settings, slug)))


@router.get("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_help(request: Request) -> HTMLResponse:
    """Where a web-view reader's "Unsubscribe" leads: their own link is in their email."""
    return pages_of(request).render(request, "unsubscribe_help.html")
