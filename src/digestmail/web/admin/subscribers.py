"""Subscribers in the admin: search, add, import a list, export it, remove or erase, and
each person's history.

The same functions as ``subscribers add|import|export|remove|show``: ``add_by_staff``
and the confirmation email, ``listfile.read_csv`` and ``import_rows``, ``write_export``
(cells made safe for spreadsheets), ``remove`` and ``erase``, ``record_of``. The consent
record is shown as it is stored, with every request kept for the person, every change
of status with its cause, and the bounces and complaints on record. Someone who marked
the digest as spam comes back only through a page where staff confirm that the person
asked in writing (``add_by_staff`` with ``confirmed``, as ``subscribers add
--confirmed``).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from digestmail import confirmation, listfile, subscribers
from digestmail.listfile import ExportFormat
from digestmail.models import (
    ChangeCause,
    EventKind,
    EventSource,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from digestmail.staff import StaffMember
from digestmail.transports.base import TransportError
from digestmail.web.admin.common import (
    PREFIX,
    Notice,
    current_staff,
    form_file,
    form_text,
    page,
    redirect,
    too_large,
)
from digestmail.web.deps import database_of, settings_of

router = APIRouter(dependencies=[Depends(current_staff)])

PAGE_SIZE = 50
# 100,000 subscribers make a CSV of a few MB.
IMPORT_MAX = 50 * 1024 * 1024
STATUS_WORDS = {
    SubscriberStatus.PENDING: "Waiting for confirmation",
    SubscriberStatus.ACTIVE: "Subscribed",
    SubscriberStatus.UNSUBSCRIBED: "Unsubscribed",
    SubscriberStatus.BOUNCED: "Bounced",
    SubscriberStatus.COMPLAINED: "Marked as spam",
}
SOURCE_WORDS = {
    "form": "the web form",
    "email": "an email to the contact address",
    "staff": "staff",
    "import": "an imported list",
}
# Why a status changed, in words: "… by {cause}".
CAUSE_WORDS = {
    ChangeCause.FORM: "a request on the web form",
    ChangeCause.EMAIL: "a request by email to the contact address",
    ChangeCause.STAFF: "staff",
    ChangeCause.IMPORT: "an imported list",
    ChangeCause.CONFIRMATION_LINK: "their confirmation link",
    ChangeCause.UNSUBSCRIBE_LINK: (
        "the unsubscribe link in an email (or their mail program's unsubscribe button)"
    ),
    ChangeCause.EVENT: "a report from the mail service",
}
EVENT_WORDS = {
    EventKind.DELIVERED: "delivered",
    EventKind.DEFERRED: "delayed",
    EventKind.BOUNCED: "bounced: the address does not work",
    EventKind.BLOCKED: "soft bounce: refused for now",
    EventKind.DROPPED: "not sent by the mail service",
    EventKind.COMPLAINED: "marked as spam",
    EventKind.UNSUBSCRIBED: "unsubscribed at the mail service",
    EventKind.OPENED: "opened",
    EventKind.CLICKED: "clicked",
}
SOURCE_OF_EVENT = {
    EventSource.SENDGRID: "SendGrid",
    EventSource.RECONCILE: "SendGrid's lists, read back",
    EventSource.BOUNCE_MESSAGE: "a bounce message",
    EventSource.SMTP: "the mail server, while sending",
}
LIST_PROBLEMS = {
    listfile.Problem.NOT_UTF8: (
        'The file is not UTF-8 text (line {line}). In your spreadsheet, save it as "CSV '
        'UTF-8" and import it again. Nothing was imported.'
    ),
    listfile.Problem.EMPTY: "The file is empty. Nothing was imported.",
    listfile.Problem.HEADER_UNREADABLE: (
        "The first line could not be read ({detail}). Nothing was imported."
    ),
    listfile.Problem.NO_EMAIL_COLUMN: (
        "The first line must name the columns, with one called email (found {detail}). "
        "Nothing was imported."
    ),
}


def _staff(member: StaffMember) -> str:
    """Who did it, for the consent record (the CLI writes the system user)."""
    return f"staff:{member.email}"


def _status(value: str) -> SubscriberStatus | None:
    try:
        return SubscriberStatus(value)
    except ValueError:
        return None


@router.get(f"{PREFIX}/subscribers")
def subscriber_list(
    request: Request, q: str = "", status: str = "", page_number: int = 1
) -> Response:
    return _list_page(request, q=q, status=status, page_number=page_number)


def _list_page(
    request: Request,
    *,
    q: str = "",
    status: str = "",
    page_number: int = 1,
    status_code: int = 200,
    notice: Notice | None = None,
    add_email: str = "",
    add_name: str = "",
) -> Response:
    wanted = _status(status)
    page_number = max(1, min(page_number, 10**6))
    with database_of(request).session() as session:
        found = subscribers.search(
            session,
            q[:320],
            status=wanted,
            offset=(page_number - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
    pages = max(1, math.ceil(found.total / PAGE_SIZE))
    return page(
        request,
        "subscribers.html",
        status_code=status_code,
        notice=notice,
        section="subscribers",
        q=q,
        status=wanted.value if wanted else "",
        found=found,
        page_number=page_number,
        pages=pages,
        status_words=STATUS_WORDS,
        add_email=add_email,
        add_name=add_name,
    )


@router.post(f"{PREFIX}/subscribers/add")
async def add(request: Request, member: StaffMember = Depends(current_staff)) -> Response:
    form = await request.form()
    email, name = form_text(form, "email"), form_text(form, "name")
    vouch = form_text(form, "vouch") == "yes"
    return await run_in_threadpool(_add, request, member, email, name, vouch)


def _add(request: Request, member: StaffMember, email: str, name: str, vouch: bool) -> Response:
    settings = settings_of(request)

    def again(text: str) -> Response:
        return _list_page(
            request,
            status_code=422,
            notice=Notice(text, "problem"),
            add_email=email,
            add_name=name,
        )

    try:
        address = subscribers.normalize(email)
    except subscribers.InvalidAddress as exc:
        return again(f"Not added: {exc.reason.rstrip('.')}.")
    try:
        with database_of(request).session() as session:
            sub, needs_mail = subscribers.add_by_staff(
                session,
                address,
                name=name or None,
                confirmed=vouch,
                staff=_staff(member),
                settings=settings,
            )
            sub_id, sub_email, status = sub.id, sub.email, sub.status
    except subscribers.Erased:
        return again(
            f"Not added: {address.email} was erased at the person's request. Only they can "
            "subscribe again (on the web form or by email)."
        )
    except subscribers.Complained as exc:
        return again(
            f"Not added: {exc.email} marked the digest as spam, so nothing is sent to them "
            "unasked. If they asked in writing to get it again, use “Bring back…” on their "
            "page."
        )
    where = f"{PREFIX}/subscribers/{sub_id}"
    if needs_mail:
        try:
            result = confirmation.send(settings, confirmation.Kind.SUBSCRIBE, [(sub_id, sub_email)])
        except TransportError as exc:
            return redirect(
                request,
                where,
                f"{sub_email} is saved, waiting for confirmation, but the confirmation email "
                f"could not be sent: {exc}",
                "problem",
            )
        if result.rejected:
            return redirect(
                request,
                where,
                f"The confirmation email to {sub_email} was refused: {result.rejected[0].error}",
                "problem",
            )
        if status in subscribers.SUPPRESSED:
            return redirect(
                request,
                where,
                f"{sub_email} had left the list ({STATUS_WORDS[status].lower()}). A "
                "confirmation email was sent: they are back only if they follow it.",
            )
        return redirect(
            request,
            where,
            f"A confirmation email was sent to {sub_email}. They are on the list once they "
            "follow its link.",
        )
    return redirect(request, where, f"{sub_email} is {STATUS_WORDS[status].lower()}.")


# --- a whole list ------------------------------------------------------------------------


@router.post(f"{PREFIX}/subscribers/import")
async def import_list(request: Request, member: StaffMember = Depends(current_staff)) -> Response:
    if too_large(request, IMPORT_MAX):
        return _list_page(
            request, status_code=413, notice=Notice("The file is too large to import.", "problem")
        )
    form = await request.form()
    upload = form_file(form, "file")
    if upload is None:
        return _list_page(
            request, status_code=422, notice=Notice("Choose a CSV file to import.", "problem")
        )
    data = await upload.read()
    double_opt_in = form_text(form, "double_opt_in") == "yes"
    label = upload.filename or "upload.csv"
    return await run_in_threadpool(_import, request, member, data, label, double_opt_in)


def _import(
    request: Request, member: StaffMember, data: bytes, label: str, double_opt_in: bool
) -> Response:
    settings = settings_of(request)
    try:
        read = listfile.read_csv(data)
    except listfile.ListFileError as exc:
        text = LIST_PROBLEMS.get(exc.problem, str(exc)).format(
            line=exc.line, detail=exc.detail or "nothing"
        )
        return _list_page(request, status_code=422, notice=Notice(text, "problem"))
    with database_of(request).session() as session:
        report = subscribers.import_rows(
            session,
            read.rows,
            double_opt_in=double_opt_in,
            staff=_staff(member),
            source_label=label,
            settings=settings,
        )
    bad = sorted(read.bad + report.bad, key=lambda b: b.line)
    mail_problem = None
    sent = 0
    if double_opt_in and report.added:
        try:
            result = confirmation.send(settings, confirmation.Kind.SUBSCRIBE, report.added)
            sent = len(result.accepted)
        except TransportError as exc:
            mail_problem = str(exc)
    return page(
        request,
        "subscribers_import.html",
        section="subscribers",
        label=label,
        report=report,
        bad=bad,
        double_opt_in=double_opt_in,
        sent=sent,
        mail_problem=mail_problem,
    )


@router.get(f"{PREFIX}/subscribers/export.csv")
def export(request: Request, status: str = "") -> FileResponse:
    wanted = _status(status)
    fd, name = tempfile.mkstemp(prefix="digestmail-export-", suffix=".csv")
    path = Path(name)
    try:
        with (
            os.fdopen(fd, "w", newline="", encoding="utf-8") as out,
            database_of(request).session() as session,
        ):
            listfile.write_export(
                out, ExportFormat.CSV, subscribers.iter_subscribers(session, wanted)
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    stamp = utcnow().strftime("%Y-%m-%d")
    suffix = f"-{wanted.value}" if wanted else ""
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename=f"subscribers{suffix}-{stamp}.csv",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# --- one subscriber ----------------------------------------------------------------------


def _subscriber(request: Request, subscriber_id: int) -> Subscriber:
    if not 0 < subscriber_id < 2**31:
        raise HTTPException(404)
    with database_of(request).session() as session:
        sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise HTTPException(404)
    return sub


@router.get(f"{PREFIX}/subscribers/{{subscriber_id}}")
def subscriber_page(request: Request, subscriber_id: int) -> Response:
    sub = _subscriber(request, subscriber_id)
    with database_of(request).session() as session:
        requests = subscribers.requests_of(session, sub.id)
        record = subscribers.record_of(session, settings_of(request), sub.email)
    if record is None:  # erased between the two reads
        raise HTTPException(404)
    return page(
        request,
        "subscriber.html",
        section="subscribers",
        sub=record.subscriber,
        record=record,
        requests=requests,
        status_words=STATUS_WORDS,
        source_words=SOURCE_WORDS,
        cause_words=CAUSE_WORDS,
        event_words=EVENT_WORDS,
        event_sources=SOURCE_OF_EVENT,
    )


# --- bringing back someone who complained ------------------------------------------------


_NOT_COMPLAINED = (
    "Only someone who marked the digest as spam is brought back this way. Others subscribe "
    "again themselves, or you add them under Subscribers (they confirm by email)."
)


@router.get(f"{PREFIX}/subscribers/{{subscriber_id}}/restore")
def confirm_restore(request: Request, subscriber_id: int) -> Response:
    sub = _subscriber(request, subscriber_id)
    if sub.status is not SubscriberStatus.COMPLAINED:
        return redirect(request, f"{PREFIX}/subscribers/{sub.id}", _NOT_COMPLAINED, "problem")
    return page(request, "subscriber_restore.html", section="subscribers", sub=sub)


@router.post(f"{PREFIX}/subscribers/{{subscriber_id}}/restore")
async def restore(
    request: Request, subscriber_id: int, member: StaffMember = Depends(current_staff)
) -> Response:
    form = await request.form()
    asked = form_text(form, "asked_in_writing") == "yes"
    return await run_in_threadpool(_restore, request, member, subscriber_id, asked)


def _restore(request: Request, member: StaffMember, subscriber_id: int, asked: bool) -> Response:
    sub = _subscriber(request, subscriber_id)
    where = f"{PREFIX}/subscribers/{sub.id}"
    if sub.status is not SubscriberStatus.COMPLAINED:
        return redirect(request, where, _NOT_COMPLAINED, "problem")
    if not asked:
        return page(
            request,
            "subscriber_restore.html",
            status_code=422,
            notice=Notice(
                "Nothing changed: tick the box to confirm that they asked in writing.",
                "problem",
            ),
            section="subscribers",
            sub=sub,
        )
    with database_of(request).session() as session:
        back, _mail = subscribers.add_by_staff(
            session,
            subscribers.normalize(sub.email),
            name=sub.name,
            confirmed=True,
            staff=_staff(member),
            settings=settings_of(request),
        )
        status = back.status
    return redirect(
        request,
        where,
        f"{sub.email} is {STATUS_WORDS[status].lower()} again: they get the next issue. "
        "Your confirmation is on their record.",
    )


@router.get(f"{PREFIX}/subscribers/{{subscriber_id}}/remove")
def confirm_remove(request: Request, subscriber_id: int) -> Response:
    sub = _subscriber(request, subscriber_id)
    return page(request, "subscriber_remove.html", section="subscribers", sub=sub)


@router.post(f"{PREFIX}/subscribers/{{subscriber_id}}/remove")
async def remove(request: Request, subscriber_id: int) -> Response:
    form = await request.form()
    erase = form_text(form, "erase") == "yes"
    return await run_in_threadpool(_remove, request, subscriber_id, erase)


def _remove(request: Request, subscriber_id: int, erase: bool) -> Response:
    sub = _subscriber(request, subscriber_id)
    with database_of(request).session() as session:
        if erase:
            subscribers.erase(session, settings_of(request), sub.email)
        else:
            removed = subscribers.remove(session, sub.email)
            status = removed.status if removed else None
    if erase:
        return redirect(
            request,
            f"{PREFIX}/subscribers",
            f"Erased {sub.email}: their personal data is deleted. Only a coded trace is kept, "
            "so that a later import cannot add them back.",
        )
    if status is SubscriberStatus.UNSUBSCRIBED or status is None:
        text = f"{sub.email} is unsubscribed and will not be mailed again."
    else:
        text = (
            f"{sub.email} stays “{STATUS_WORDS[status].lower()}” (a stronger record than "
            "unsubscribed) and will not be mailed again."
        )
    return redirect(request, f"{PREFIX}/subscribers/{subscriber_id}", text)
