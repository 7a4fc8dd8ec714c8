"""Subscribers in the admin (web/admin/subscribers.py): find, add, import, export, remove,
each one's history, and bringing back someone who complained."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from sqlalchemy import select

from digestmail import events, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import (
    ErasedAddress,
    EventKind,
    EventSource,
    Subscriber,
    SubscriberSource,
    SubscriberStatus,
    utcnow,
)
from tests.adminhelpers import EMAIL, Admin, admin_client
from tests.webhelpers import outbox_messages


def _sub(settings: Settings, email: str) -> Subscriber | None:
    db = Database(settings.database_url)
    with db.session() as session:
        found = subscribers.find(session, email)
    db.dispose()
    return found


def test_add_with_or_without_confirmation(settings: Settings) -> None:
    with admin_client(settings) as admin:
        vouched = admin.follow(
            admin.post(
                "/admin/subscribers/add",
                {"email": "Ann@Example.org", "name": "Ann", "vouch": "yes"},
            )
        )
        assert Admin.notice(vouched) == "Ann@example.org is subscribed."
        ann = _sub(settings, "ann@example.org")
        assert ann is not None and ann.status is SubscriberStatus.ACTIVE
        assert ann.source is SubscriberSource.STAFF and ann.consent_by == f"staff:{EMAIL}"
        assert "Consent record" in vouched.text and f"staff:{EMAIL}" in vouched.text

        asked = admin.follow(admin.post("/admin/subscribers/add", {"email": "bob@example.org"}))
        assert "A confirmation email was sent to bob@example.org" in Admin.notice(asked)
        [mail] = outbox_messages(Path(settings.outbox_dir))
        assert mail["To"] == "bob@example.org"

        bad = admin.post("/admin/subscribers/add", {"email": "bob@", "name": "Bob"})
        assert bad.status_code == 422 and "Not added" in bad.text
        assert 'value="bob@"' in bad.text and 'value="Bob"' in bad.text  # kept to fix


def test_find_by_address_or_name_in_pages(settings: Settings) -> None:
    db = Database(settings.database_url)
    with db.session() as session:
        subscribers.import_rows(
            session,
            [subscribers.ImportRow(i, f"p{i:03}@example.org", f"Person {i}") for i in range(120)]
            + [subscribers.ImportRow(200, "maria@example.org", "María López")],
            double_opt_in=False,
            staff="test",
            source_label="test",
            settings=settings,
        )
    db.dispose()
    with admin_client(settings) as admin:
        everyone = admin.client.get("/admin/subscribers")
        assert "121 subscribers." in everyone.text and "Page 1 of 3" in everyone.text
        last = admin.client.get("/admin/subscribers", params={"page_number": 3})
        assert len(re.findall(r'href="/admin/subscribers/\d+"', last.text)) == 21
        by_name = admin.client.get("/admin/subscribers", params={"q": "lópez"})
        assert "1 subscriber found." in by_name.text and "maria@example.org" in by_name.text
        literal = admin.client.get("/admin/subscribers", params={"q": "p_0"})
        assert "0 subscribers found." in literal.text  # _ is a character, not a wildcard
        pending = admin.client.get("/admin/subscribers", params={"status": "pending"})
        assert "0 subscribers found." in pending.text


def test_import_reports_bad_rows_and_export_is_spreadsheet_safe(settings: Settings) -> None:
    data = (
        "email,name\nann@example.org,Ann\nnot-an-address,X\nann@example.org,Again\n"
        '=1+1@example.org,"=HYPERLINK(1)"\n'
    )
    with admin_client(settings) as admin:
        r = admin.post(
            "/admin/subscribers/import", files={"file": ("list.csv", data.encode(), "text/csv")}
        )
        assert r.status_code == 200
        assert "<strong>2</strong> added" in r.text
        assert "<strong>1</strong> repeated in the file" in r.text
        assert "Rows that were skipped" in r.text
        assert '<td class="num">3</td>' in r.text and "not-an-address" in r.text

        latin = admin.post(
            "/admin/subscribers/import",
            files={
                "file": (
                    "list.csv",
                    "email,name\nzoë@example.org,Zoë\n".encode("latin-1"),
                    "text/csv",
                )
            },
        )
        assert latin.status_code == 422 and "not UTF-8 text (line 2)" in latin.text

        export = admin.client.get("/admin/subscribers/export.csv")
        assert export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert {r["email"] for r in rows} == {"ann@example.org", "'=1+1@example.org"}
        assert [r["name"] for r in rows if r["email"].startswith("'")] == ["'=HYPERLINK(1)"]
        assert not list(Path("/tmp").glob("digestmail-export-*"))  # the temporary file is gone


def test_remove_then_erase(settings: Settings) -> None:
    with admin_client(settings) as admin:
        added = admin.post("/admin/subscribers/add", {"email": "ann@example.org", "vouch": "yes"})
        where = added.headers["location"]
        assert "Unsubscribe:" in admin.client.get(f"{where}/remove").text
        removed = admin.follow(admin.post(f"{where}/remove", {"erase": "no"}))
        assert (
            Admin.notice(removed) == "ann@example.org is unsubscribed and will not be mailed again."
        )
        sub = _sub(settings, "ann@example.org")
        assert sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED

        erased = admin.follow(admin.post(f"{where}/remove", {"erase": "yes"}))
        assert Admin.notice(erased).startswith("Erased ann@example.org")
        assert _sub(settings, "ann@example.org") is None
        db = Database(settings.database_url)
        with db.session() as session:
            assert len(session.scalars(select(ErasedAddress)).all()) == 1
        db.dispose()
        assert admin.client.get(where).status_code == 404
        back = admin.post("/admin/subscribers/add", {"email": "ann@example.org", "vouch": "yes"})
        assert back.status_code == 422 and "erased at the person" in back.text


def test_outbox_pages_show_each_message_sandboxed(sqlite_url: str) -> None:
    settings = Settings()
    with admin_client(settings) as admin:
        admin.post("/admin/subscribers/add", {"email": "look@example.org"})
        page = admin.client.get("/admin/outbox")
        assert page.status_code == 200 and "look@example.org" in page.text
        [name] = [p.name for p in Path(settings.outbox_dir).glob("*.eml")]
        raw = admin.client.get(f"/admin/outbox/{name}")
        assert raw.status_code == 200 and b"Subject:" in raw.content
        html = admin.client.get(f"/admin/outbox/{name}/html")
        assert html.headers["content-security-policy"].startswith("sandbox")
        assert admin.client.get("/admin/outbox/..%2Fsubscribers.db").status_code == 404
        assert admin.client.get("/admin/outbox/nothing.eml").status_code == 404


def test_no_outbox_with_another_transport(sqlite_url: str) -> None:
    settings = Settings(transport="smtp", smtp_url="smtp://127.0.0.1:1", secret_key="k" * 40)
    with admin_client(settings) as admin:
        assert admin.client.get("/admin/outbox").status_code == 404
        assert "/admin/outbox" not in admin.client.get("/admin").text


def _report(settings: Settings, email: str, kind: EventKind, tag: str, reason: str) -> None:
    db = Database(settings.database_url)
    events.receive(
        db,
        settings,
        [
            Normalised(
                event_id=f"test:{tag}",
                kind=kind,
                source=EventSource.SENDGRID,
                email=email,
                occurred_at=utcnow(),
                reason=reason,
            )
        ],
    )
    db.dispose()


def test_history_and_bringing_back_someone_who_complained(settings: Settings) -> None:
    with admin_client(settings) as admin:
        where = admin.post(
            "/admin/subscribers/add", {"email": "ann@example.org", "vouch": "yes"}
        ).headers["location"]
        _report(settings, "ann@example.org", EventKind.BLOCKED, "soft", "452 mailbox full")
        _report(settings, "ann@example.org", EventKind.COMPLAINED, "spam", "spam report")
        page = admin.client.get(where).text
        history = page[page.index('id="history"') : page.index('id="bounces"')]
        rows = re.findall(r"<tr>\s*<td>[^<]+</td>\s*<td>(.*?)</td>\s*<td[^>]*>(.*?)</td>", history)
        assert [(re.sub(r"<[^>]+>", "", change), why) for change, why in rows] == [
            ("Added: Waiting for confirmation", f"By staff: staff:{EMAIL}"),
            ("Waiting for confirmation → Subscribed", f"By staff: staff:{EMAIL}"),
            (
                "Subscribed → Marked as spam",
                "By a report from the mail service (marked as spam, event test:spam). "
                "<q>spam report</q>",
            ),
        ]
        bounces = page[page.index('id="bounces"') :]
        assert "Soft bounces: <strong>1</strong> of 5 points in the last 30 days" in bounces
        assert "Soft bounce: refused for now" in bounces and "452 mailbox full" in bounces
        assert "Marked as spam" in bounces and "SendGrid" in bounces

        # Not through the Add form, and not without saying they asked in writing.
        added = admin.post("/admin/subscribers/add", {"email": "ann@example.org"})
        assert added.status_code == 422
        assert "marked the digest as spam, so nothing is sent to them unasked" in added.text
        assert "Bring them back" in admin.client.get(f"{where}/restore").text
        unticked = admin.post(f"{where}/restore")
        assert unticked.status_code == 422
        assert Admin.notice(unticked) == (
            "Nothing changed: tick the box to confirm that they asked in writing."
        )
        sub = _sub(settings, "ann@example.org")
        assert sub is not None and sub.status is SubscriberStatus.COMPLAINED

        back = admin.follow(admin.post(f"{where}/restore", {"asked_in_writing": "yes"}))
        assert Admin.notice(back) == (
            "ann@example.org is subscribed again: they get the next issue. Your confirmation "
            "is on their record."
        )
        sub = _sub(settings, "ann@example.org")
        assert sub is not None and sub.status is SubscriberStatus.ACTIVE
        assert (
            f'Marked as spam → <span class="status active">Subscribed</span></td>\n'
            f'        <td class="wrap">By staff: staff:{EMAIL}. '
            "<q>staff vouch for consent after a spam complaint</q>"
        ) in back.text
        # Only someone marked as spam is brought back this way.
        again = admin.follow(admin.client.get(f"{where}/restore"))
        assert Admin.notice(again).startswith("Only someone who marked the digest as spam")
