"""Subscribers in the admin (web/admin/subscribers.py): find, add, import, export, remove."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from sqlalchemy import select

from digestmail import subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import ErasedAddress, Subscriber, SubscriberSource, SubscriberStatus
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
