"""The archive as an Atom feed (RFC 4287): every sent issue, newest first.

Feed readers, and the institute's own website, follow the publication this way
without an email address. Each entry's id is the issue's web address, which never
changes once the issue is sent, so readers never show an issue twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from feedgen.feed import FeedGenerator

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import published_issues
from digestmail.render import webview_url

FEED_PATH = "/feed.atom"
FEED_TYPE = "application/atom+xml"
# Enough for a reader to catch up after a long holiday; the archive page has them all.
FEED_ENTRIES = 50


def atom(db: Database, settings: Settings, *, limit: int = FEED_ENTRIES) -> bytes:
    """The Atom document of the newest ``limit`` sent issues (drafts never appear)."""
    base = settings.base_url
    issues = published_issues(db, limit=limit)
    feed = FeedGenerator()
    feed.id(f"{base}/archive")
    feed.title(settings.publication)
    feed.subtitle(f"Every issue of {settings.publication}, as it was sent.")
    feed.author({"name": settings.publication, "email": settings.contact_address})
    feed.link(href=f"{base}/archive", rel="alternate", type="text/html")
    feed.link(href=f"{base}{FEED_PATH}", rel="self", type=FEED_TYPE)
    feed.language("en")
    # Atom requires a time; with no issue yet, the start of the epoch stays stable.
    newest = next((i.sent_at for i in issues if i.sent_at), None)
    feed.updated(newest or datetime(1970, 1, 1, tzinfo=UTC))
    for issue in issues:
        url = webview_url(settings, issue.slug)
        entry = feed.add_entry(order="append")
        entry.id(url)
        entry.title(issue.title)
        entry.link(href=url, rel="alternate", type="text/html")
        when = issue.sent_at or issue.created_at
        entry.published(when)
        entry.updated(when)
        if issue.preheader:
            entry.summary(issue.preheader)
    data: bytes = feed.atom_str(pretty=True)
    return data
