"""A sent issue for paper: ``/issues/SLUG/print`` (a page with a print stylesheet) and
``/issues/SLUG/pdf`` (the same page as a PDF). Drafts are a 404, as on ``/issues/SLUG``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from digestmail.printing import PdfUnavailable, PrintableIssue, pdf, printable
from digestmail.web.deps import database_of, pages_of, settings_of

log = logging.getLogger(__name__)
router = APIRouter()


def _printable(request: Request, slug: str) -> PrintableIssue:
    issue = printable(database_of(request), settings_of(request), slug)
    if issue is None:
        raise HTTPException(status_code=404, detail="No such issue")
    return issue


def _page(request: Request, issue: PrintableIssue) -> HTMLResponse:
    context: dict[str, Any] = {
        **issue.context,
        "issue": issue,
        "pdf_url": f"/issues/{issue.slug}/pdf",
    }
    return pages_of(request).render(request, "issue_print.html", **context)


@router.get("/issues/{slug}/print", response_class=HTMLResponse)
def print_page(request: Request, slug: str) -> HTMLResponse:
    return _page(request, _printable(request, slug))


@router.get("/issues/{slug}/pdf")
def pdf_download(request: Request, slug: str) -> Response:
    issue = _printable(request, slug)
    html = bytes(_page(request, issue).body).decode("utf-8")
    try:
        data = pdf(html, settings_of(request))
    except PdfUnavailable as exc:
        log.error("PDF of issue %s not made: %s", slug, exc.reason)
        return pages_of(request).render(
            request, "pdf_unavailable.html", status_code=503, print_url=f"/issues/{slug}/print"
        )
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{issue.slug}.pdf"',
            "Cache-Control": "public, max-age=3600",
        },
    )
