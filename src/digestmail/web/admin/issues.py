"""Issues in the admin: add (upload or paste an archived one), check, preview, test, send.

Each action is one call of what the command line runs: ``issues.store_issue`` (``issue
add``), ``importer.import_archive`` (``issue import``), ``parse_issue`` (``issue
check``), ``campaigns.send_test`` (``send --test-to``), ``scheduling.set_ready``
(``issue ready|unready``),
``campaigns.plan_send`` and ``create_campaign`` (``send``). A picture goes into the
media folder through ``MediaStore.store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from digestmail import campaigns, issues, scheduling
from digestmail.campaigns import CampaignError, CampaignExists, IssueNotFound
from digestmail.config import Settings
from digestmail.content.importer import ArchiveImportError, import_archive
from digestmail.content.source import IssueSourceError, Problem, decode_source, parse_issue
from digestmail.db import Database
from digestmail.media import MAX_BYTES, MediaError, MediaStore
from digestmail.models import Issue
from digestmail.notify import when as zoned
from digestmail.placeholders import substitute
from digestmail.staff import StaffMember
from digestmail.transports.base import TransportError
from digestmail.web.admin import words
from digestmail.web.admin.common import (
    PREFIX,
    current_staff,
    form_file,
    form_text,
    page,
    redirect,
    sandboxed,
    too_large,
)
from digestmail.web.admin.runner import CampaignRunner
from digestmail.web.deps import database_of, settings_of

router = APIRouter(dependencies=[Depends(current_staff)])

# An issue file is a few KB; its picture at most MediaStore's limit.
UPLOAD_MAX = MAX_BYTES + 2 * 1024 * 1024
PASTED = "pasted text"


@dataclass(frozen=True)
class ShownProblem:
    """A check finding with the source line it points at."""

    line: int
    severity: str
    message: str
    text: str | None


def shown_problems(source: str, problems: list[Problem]) -> list[ShownProblem]:
    lines = source.splitlines()
    return [
        ShownProblem(
            p.line,
            p.severity,
            p.message,
            lines[p.line - 1] if 0 < p.line <= len(lines) else None,
        )
        for p in sorted(problems)
    ]


def _issue(request: Request, slug: str) -> Issue:
    issue = issues.get_issue(database_of(request), slug)
    if issue is None:
        raise HTTPException(404)
    return issue


def _runner(request: Request) -> CampaignRunner:
    runner: CampaignRunner = request.app.state.campaign_runner
    return runner


# --- the list and a new issue ------------------------------------------------------------


@router.get(f"{PREFIX}/issues")
def issue_list(request: Request) -> Response:
    return page(
        request,
        "issues.html",
        section="issues",
        issues=issues.list_issues(database_of(request)),
        labels=words.ISSUE_STATUS,
    )


def _new_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    defaults: dict[str, Any] = {
        "section": "issues",
        "problems": [],
        "source": None,
        "source_name": None,
        "error": None,
        "pasted": "",
        "paste_date": "",
        "paste_publication": "",
        "paste_error": None,
    }
    return page(request, "issue_new.html", status_code=status_code, **{**defaults, **context})


@router.get(f"{PREFIX}/issues/new")
def new_issue(request: Request) -> Response:
    return _new_page(request)


@router.post(f"{PREFIX}/issues/new")
async def save_issue(request: Request) -> Response:
    """Store an issue from an uploaded file or the text of the form, with its picture."""
    if too_large(request, UPLOAD_MAX):
        return _new_page(
            request,
            413,
            error="The files are too large. An issue file is a few kilobytes; keep the "
            "picture under 10 MB (about 200 KB is best for email).",
        )
    form = await request.form()
    file = form_file(form, "source_file")
    picture = form_file(form, "picture")
    name = file.filename if file is not None and file.filename else PASTED
    try:
        if file is not None:
            source = decode_source(await file.read(), path=name)
        else:
            source = form_text(form, "source").replace("\r\n", "\n")
    except IssueSourceError as exc:
        return _new_page(request, 422, error=exc.problems[0].message)
    if not source.strip():
        return _new_page(request, 422, error="Choose an issue file (.md) to upload first.")
    picture_data = await picture.read() if picture is not None else None
    replace = form_text(form, "replace_picture") == "yes"
    return await run_in_threadpool(_store, request, source, name, picture, picture_data, replace)


def _store(
    request: Request,
    source: str,
    name: str,
    picture: UploadFile | None,
    picture_data: bytes | None,
    replace: bool,
) -> Response:
    settings = settings_of(request)
    stored_picture = None
    if picture is not None and picture_data is not None:
        try:
            stored_picture = MediaStore.of(settings).store(
                picture.filename or "", picture_data, replace=replace
            )
        except MediaError as exc:
            return _new_page(
                request,
                422,
                source=source,
                source_name=name,
                error=f"The picture {picture.filename!r} was not saved: {exc.reason}. "
                "Nothing was saved; please choose the files again.",
            )
    try:
        issue = issues.store_issue(database_of(request), settings, source, name=name)
    except IssueSourceError as exc:
        saved = f" The picture was saved as {stored_picture}." if stored_picture is not None else ""
        return _new_page(
            request,
            422,
            source=source,
            source_name=name,
            problems=shown_problems(source, exc.problems),
            error=f"The issue was not saved: fix the problems below, then save again.{saved}",
        )
    except issues.IssueStoreError as exc:
        return _new_page(request, 409, source=source, source_name=name, error=_store_error(exc))
    with_picture = f" with the picture {stored_picture}" if stored_picture else ""
    return redirect(
        request,
        f"{PREFIX}/issues/{issue.slug}",
        f"Saved “{issue.title}”{with_picture} as a draft. Check the preview, send yourself "
        "a test, then mark it ready.",
    )


def _store_error(exc: issues.IssueStoreError) -> str:
    if isinstance(exc, issues.IssueAlreadySent):
        return (
            "An issue with this volume number was already sent and stays as it was sent. "
            "Give the new version another volume number."
        )
    return str(exc)


@router.post(f"{PREFIX}/issues/import")
async def import_pasted(request: Request) -> Response:
    """Turn text copied from the archive page into an issue source, for staff to check."""
    form = await request.form()
    text = form_text(form, "text").replace("\r\n", "\n")
    raw_date = form_text(form, "date").strip()
    publication = form_text(form, "publication").strip() or None
    kept = {"pasted": text, "paste_date": raw_date, "paste_publication": publication or ""}
    when: date | None = None
    if raw_date:
        try:
            when = date.fromisoformat(raw_date)
        except ValueError:
            return _new_page(
                request, 422, paste_error="Write the date as YYYY-MM-DD, e.g. 2025-01-17.", **kept
            )
    if not text.strip():
        return _new_page(request, 422, paste_error="Paste the issue's text first.", **kept)
    try:
        result = import_archive(text, date=when, publication=publication)
    except ArchiveImportError as exc:
        return _new_page(request, 422, paste_error=f"This text could not be read: {exc}.", **kept)
    return page(
        request,
        "issue_import.html",
        section="issues",
        notes=result.notes,
        source=result.source,
        problems=shown_problems(result.source, result.check.problems),
        ok=result.ok,
    )


# --- one issue ---------------------------------------------------------------------------


@router.get(f"{PREFIX}/issues/{{slug}}")
def issue_page(request: Request, slug: str) -> Response:
    settings = settings_of(request)
    issue = _issue(request, slug)
    check = parse_issue(issue.source, media=MediaStore.of(settings))
    related = [c for c in campaigns.list_campaigns(database_of(request)) if c.issue_slug == slug]
    return page(
        request,
        "issue.html",
        section="issues",
        issue=issue,
        label=words.ISSUE_STATUS[issue.status],
        problems=shown_problems(issue.source, check.problems),
        campaigns=related,
        status_labels=words.STATUS,
        when=words.when,
        text=substitute(issue.text, campaigns.sample_reader_values(settings, slug)),
    )


@router.get(f"{PREFIX}/issues/{{slug}}/email.html")
def email_preview(request: Request, slug: str) -> Response:
    """The email as it arrives, for a sample reader, to be shown in a sandboxed frame."""
    issue = _issue(request, slug)
    values = campaigns.sample_reader_values(settings_of(request), slug)
    return sandboxed(substitute(issue.html, values))


@router.post(f"{PREFIX}/issues/{{slug}}/test")
def send_test(
    request: Request, slug: str, member: StaffMember = Depends(current_staff)
) -> Response:
    settings = settings_of(request)
    back = f"{PREFIX}/issues/{slug}"
    try:
        result = campaigns.send_test(database_of(request), settings, slug, [member.email])
    except TransportError as exc:
        return redirect(request, back, f"The test was not sent: {exc}", "problem")
    except CampaignError as exc:
        return redirect(request, back, words.campaign_problem(exc), "problem")
    if result.rejected:
        return redirect(
            request, back, f"The test was not sent: {result.rejected[0].error}", "problem"
        )
    where = " It is in the Outbox." if settings.transport == "outbox" else ""
    return redirect(request, back, f"A test was sent to {member.email}.{where}")


@router.post(f"{PREFIX}/issues/{{slug}}/ready")
async def mark_ready(request: Request, slug: str) -> Response:
    form = await request.form()
    ready = form_text(form, "ready") == "yes"
    return await run_in_threadpool(_mark_ready, request, slug, ready)


def _mark_ready(request: Request, slug: str, ready: bool) -> Response:
    back = f"{PREFIX}/issues/{slug}"
    try:
        result = scheduling.set_ready(database_of(request), slug, ready)
    except scheduling.IssueSent:
        return redirect(request, back, "This issue was sent; it stays as it was.", "problem")
    except IssueNotFound:
        raise HTTPException(404) from None
    sends = [zoned(s.run_at, s.zone) for s in result.waiting if s.run_at is not None]
    if ready:
        extra = f" It is scheduled to go out {' and '.join(sends)}." if sends else ""
        return redirect(request, back, f"Marked ready to send.{extra}")
    extra = (
        f" Its scheduled send ({' and '.join(sends)}) is skipped unless it is ready again by then."
        if sends
        else ""
    )
    return redirect(
        request, back, f"Marked as a draft again: it will not be sent until ready.{extra}"
    )


# --- sending to everyone -----------------------------------------------------------------


def _plan(
    db: Database, settings: Settings, slug: str, again: bool
) -> campaigns.SendPlan | CampaignError:
    try:
        return campaigns.plan_send(db, settings, slug, again=again)
    except CampaignError as exc:
        return exc


@router.get(f"{PREFIX}/issues/{{slug}}/send")
def confirm_send(request: Request, slug: str, again: bool = False) -> Response:
    settings = settings_of(request)
    issue = _issue(request, slug)
    plan = _plan(database_of(request), settings, slug, again)
    problem = words.campaign_problem(plan) if isinstance(plan, CampaignError) else None
    may_repeat = isinstance(plan, CampaignExists) and not plan.unfinished
    return page(
        request,
        "issue_send.html",
        section="issues",
        issue=issue,
        plan=None if isinstance(plan, CampaignError) else plan,
        problem=problem,
        may_repeat=may_repeat,
        again=again,
        outbox_dir=str(settings.outbox_dir),
    )


@router.post(f"{PREFIX}/issues/{{slug}}/send")
async def start_send(request: Request, slug: str) -> Response:
    form = await request.form()
    again = form_text(form, "again") == "yes"
    return await run_in_threadpool(_start_send, request, slug, again)


def _start_send(request: Request, slug: str, again: bool) -> Response:
    settings = settings_of(request)
    db = database_of(request)
    back = f"{PREFIX}/issues/{slug}"
    plan = _plan(db, settings, slug, again)
    if isinstance(plan, CampaignError):
        return redirect(request, back, words.campaign_problem(plan), "problem")
    if not plan.ready:
        return redirect(request, back, "Mark the issue ready before sending it.", "problem")
    try:
        campaign_id = campaigns.create_campaign(db, settings, slug, again=again)
    except CampaignError as exc:
        return redirect(request, back, words.campaign_problem(exc), "problem")
    refused = _runner(request).start(campaign_id, resume=False)
    where = f"{PREFIX}/campaigns/{campaign_id}"
    if refused is not None:
        return redirect(request, where, words.campaign_problem(refused), "problem")
    people = f"{plan.audience} subscriber{'' if plan.audience == 1 else 's'}"
    return redirect(request, where, f"Sending started to {people}. Progress shows below.")
