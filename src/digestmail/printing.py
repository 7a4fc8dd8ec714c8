"""Sent issues on paper: the printable page's content, and the same page as a PDF.

The printable page is written from the issue itself (the same pieces the email shows,
from ``render.issue_context``), not from the email's table layout, so it prints as a
document: one column, real headings, links followed by their addresses.

The PDF is that page laid out by WeasyPrint. WeasyPrint needs Pango from the system
(Debian: ``libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0``); without it,
``pdf`` raises ``PdfUnavailable`` and the printable page still works. While laying
out, WeasyPrint may fetch only pictures of our own media folder, read from disk: it
never goes on the network, so a page cannot make the server request anything.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from digestmail.config import Settings
from digestmail.content.source import IssueSourceError, parse_issue
from digestmail.db import Database
from digestmail.issues import published_issue
from digestmail.media import URL_PREFIX, MediaError, MediaStore, content_type, media_name
from digestmail.render import issue_context, webview_url

log = logging.getLogger(__name__)

# One PDF at a time per process: laying out takes about a second of CPU, and the
# page is public, so many requests at once must not take every core.
_PDF_LOCK = threading.Lock()


@dataclass(frozen=True)
class PrintableIssue:
    slug: str
    title: str
    sent_at: datetime | None
    web_url: str
    # The pieces the templates show: see ``render.issue_context``.
    context: dict[str, object]


class PdfUnavailable(RuntimeError):
    """This server cannot make PDFs; ``reason`` says what is missing."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def printable(db: Database, settings: Settings, slug: str) -> PrintableIssue | None:
    """A sent issue ready for its printable page, or None (not sent, or no such issue)."""
    row = published_issue(db, slug)
    if row is None:
        return None
    # Its stored source passed the checks when it was added; a picture removed from
    # the media folder since then must not make the issue unprintable.
    parsed = parse_issue(row.source, path=f"issue {slug}")
    if parsed.issue is None or not parsed.ok:
        raise IssueSourceError(f"issue {slug}", parsed.errors)
    return PrintableIssue(
        slug=row.slug,
        title=row.title,
        sent_at=row.sent_at,
        web_url=webview_url(settings, row.slug),
        context=issue_context(parsed.issue, settings),
    )


def pdf(html: str, settings: Settings) -> bytes:
    """The printable page as a PDF (A4, as the stylesheet's ``@page`` says).

    Raises ``PdfUnavailable`` when WeasyPrint or its system libraries are missing.
    """
    return _pdf(html, settings.base_url, str(Path(settings.media_dir).resolve()))


@lru_cache(maxsize=16)
def _pdf(html: str, base_url: str, media_dir: str) -> bytes:
    """Cached by the page itself: a sent issue's page never changes, so neither does its PDF."""
    try:
        from weasyprint import HTML
        from weasyprint.urls import URLFetcher, URLFetcherResponse
    except (ImportError, OSError) as exc:
        # OSError: the Python package is there but Pango, HarfBuzz or fontconfig is not.
        raise PdfUnavailable(f"WeasyPrint cannot run here: {exc}") from exc

    media = MediaStore(Path(media_dir))
    prefix = base_url + URL_PREFIX

    class MediaOnly(URLFetcher):  # type: ignore[misc]
        """Serves pictures of the media folder from disk and refuses everything else."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            if not url.startswith(prefix):
                raise ValueError(f"not fetched (only the media folder is): {url}")
            try:
                name = media_name(url[len(prefix) :])
            except MediaError as exc:
                raise ValueError(str(exc)) from exc
            path = media.path(name)
            if path is None:
                raise ValueError(f"no such picture in the media folder: {name}")
            return URLFetcherResponse(
                url, path.read_bytes(), headers={"Content-Type": content_type(name)}
            )

    with _PDF_LOCK:
        document = HTML(string=html, base_url=base_url, url_fetcher=MediaOnly())
        data: bytes = document.write_pdf()
    return data
