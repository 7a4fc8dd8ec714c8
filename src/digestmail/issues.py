"""Issues in the database: checked, rendered once, then sent by campaigns.

An issue is rendered when it is added, not when it is sent: every campaign and test
send of it uses the same stored HTML and text (with per-recipient placeholders), so
what staff previewed is what goes out, and a send never pays for a render.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.media import MediaStore
from digestmail.models import Issue, IssueStatus
from digestmail.render import render_issue


class IssueStoreError(ValueError):
    """The issue cannot be stored as asked, in words staff can act on."""


class IssueAlreadySent(IssueStoreError):
    """A sent issue stays as it was sent: not replaced, not back to draft or ready."""

    def __init__(self, slug: str, *, replacing: bool = False) -> None:
        text = f"issue {slug!r} was already sent"
        if replacing:
            text += " and cannot be replaced; give the new version another volume number"
        super().__init__(text)
        self.slug = slug


def add_issue(db: Database, settings: Settings, path: str | Path, *, ready: bool = False) -> Issue:
    """Check, render and store an issue file; an unsent issue with the same slug is replaced.

    Raises ``content.source.IssueSourceError`` (with every problem) for a file that
    fails ``issue check`` (a hero picture named by file must be in the media folder),
    and ``IssueStoreError`` when that issue was already sent: what subscribers received
    must stay on record.
    """
    # The parser is loaded for adding, not with this module (a send reads issues only).
    from digestmail.content.source import IssueSourceError, Problem, decode_source

    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise IssueSourceError(name, [Problem(1, "error", f"cannot read the file: {exc}")]) from exc
    return store_issue(db, settings, decode_source(raw, path=name), name=name, ready=ready)


def store_issue(
    db: Database, settings: Settings, source: str, *, name: str | None = None, ready: bool = False
) -> Issue:
    """``add_issue`` for a source given as text (an upload, a pasted import); ``name``
    is what problems are reported against."""
    from digestmail.content.source import checked_issue

    content = checked_issue(source, path=name, media=MediaStore.of(settings))
    rendered = render_issue(content, settings)
    status = IssueStatus.READY if ready else IssueStatus.DRAFT
    with db.session() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == content.slug))
        if issue is None:
            issue = Issue(slug=content.slug)
            session.add(issue)
        elif issue.status is IssueStatus.SENT:
            raise IssueAlreadySent(content.slug, replacing=True)
        issue.publication = content.publication
        issue.volume = content.volume
        issue.title = content.title or rendered.subject
        issue.issue_date = content.date
        issue.source = source
        issue.subject = rendered.subject
        issue.preheader = rendered.preheader
        issue.html = rendered.html
        issue.text = rendered.text
        issue.status = status
        session.flush()
        session.refresh(issue)
        return issue


def set_ready(db: Database, slug: str, ready: bool) -> Issue | None:
    """Mark an unsent issue ready to send, or back to draft; None if there is no such issue."""
    with db.session() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == slug).with_for_update())
        if issue is None:
            return None
        if issue.status is IssueStatus.SENT:
            raise IssueAlreadySent(slug)
        issue.status = IssueStatus.READY if ready else IssueStatus.DRAFT
        return issue


def get_issue(db: Database, slug: str) -> Issue | None:
    with db.session() as session:
        return session.scalar(select(Issue).where(Issue.slug == slug))


def list_issues(db: Database) -> list[Issue]:
    """Newest first (by issue date, then by when it was added)."""
    with db.session() as session:
        return list(
            session.scalars(
                select(Issue).order_by(
                    Issue.issue_date.desc().nulls_last(), Issue.created_at.desc(), Issue.id.desc()
                )
            )
        )


def published_issue(db: Database, slug: str) -> Issue | None:
    """The issue if it has been sent, else None: only sent issues are public.

    A draft and a missing issue give the same None, so a public page cannot tell
    visitors that an unpublished issue exists.
    """
    with db.session() as session:
        return session.scalar(
            select(Issue).where(Issue.slug == slug, Issue.status == IssueStatus.SENT)
        )


def published_issues(db: Database, *, limit: int | None = None) -> list[Issue]:
    """Sent issues, the most recently sent first (the archive and its feed)."""
    with db.session() as session:
        query = (
            select(Issue)
            .where(Issue.status == IssueStatus.SENT)
            .order_by(Issue.sent_at.desc(), Issue.id.desc())
            .limit(limit)
        )
        return list(session.scalars(query))
