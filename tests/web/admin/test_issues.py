"""Issues in the admin (web/admin/issues.py): add, check, preview, test, ready, send."""

from __future__ import annotations

import time
from pathlib import Path

from digestmail import issues
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import IssueStatus
from tests.adminhelpers import EMAIL, Admin, admin_client
from tests.conftest import EXAMPLE, EXAMPLE_HERO, SAMPLES
from tests.webhelpers import outbox_messages

SLUG = "us-japan-alliance-digest-4-1"
BROKEN_LINE = 23  # Trade officials' headline, given a link with no address
BROKEN = EXAMPLE.read_text(encoding="utf-8").replace(
    "- Trade officials review progress", "- Trade officials [review]() progress"
)


def _upload(admin: Admin, source: str | bytes, *, picture: bool = True) -> object:
    files = {"source_file": ("vol-4.1.md", source, "text/markdown")}
    if picture:
        files["picture"] = (EXAMPLE_HERO.name, EXAMPLE_HERO.read_bytes(), "image/jpeg")
    return admin.post("/admin/issues/new", files=files)


def test_an_upload_with_a_problem_shows_it_at_its_line_and_saves_nothing(
    settings: Settings,
) -> None:
    with admin_client(settings) as admin:
        r = _upload(admin, BROKEN)
        assert r.status_code == 422
        assert f"Line {BROKEN_LINE}" in r.text
        assert "Trade officials [review]() progress" in r.text  # the line itself
        assert "was not saved" in r.text
        # The text is there to be fixed in place, and saving the fix stores it.
        assert 'name="source"' in r.text
        fixed = admin.post(
            "/admin/issues/new", {"source": EXAMPLE.read_text().replace("\n", "\r\n")}
        )
        assert fixed.headers["location"] == f"/admin/issues/{SLUG}"
    db = Database(settings.database_url)
    issue = issues.get_issue(db, SLUG)
    db.dispose()
    assert issue is not None and "\r" not in issue.source


def test_upload_with_its_picture_preview_test_ready_and_send(settings: Settings) -> None:
    with admin_client(settings) as admin:
        saved = admin.follow(_upload(admin, EXAMPLE.read_bytes()))
        assert "with the picture vol-4.1-hero.jpg as a draft" in Admin.notice(saved)
        assert (
            Path(settings.media_dir) / EXAMPLE_HERO.name
        ).read_bytes() == EXAMPLE_HERO.read_bytes()
        # The same picture again is fine; another picture of that name is not replaced.
        again = admin.follow(_upload(admin, EXAMPLE.read_bytes()))
        assert "as a draft" in Admin.notice(again)
        other = admin.post(
            "/admin/issues/new",
            files={
                "source_file": ("vol-4.1.md", EXAMPLE.read_bytes(), "text/markdown"),
                "picture": (EXAMPLE_HERO.name, b"\xff\xd8\xff other picture", "image/jpeg"),
            },
        )
        assert other.status_code == 422 and "already in the media folder" in other.text

        page = admin.client.get(f"/admin/issues/{SLUG}")
        assert page.text.count(f'src="/admin/issues/{SLUG}/email.html" sandbox') == 2
        assert "Dear A Reader," in page.text  # the plain-text version, for a sample reader
        email = admin.client.get(f"/admin/issues/{SLUG}/email.html")
        assert email.headers["content-security-policy"].startswith("sandbox")
        assert "%%" not in email.text and "Dear A Reader," in email.text

        tested = admin.follow(admin.post(f"/admin/issues/{SLUG}/test"))
        assert Admin.notice(tested) == f"A test was sent to {EMAIL}. It is in the Outbox."
        [test_mail] = outbox_messages(Path(settings.outbox_dir))
        assert test_mail["To"] == EMAIL and test_mail["Subject"].startswith("[TEST]")

        # Nobody is subscribed yet: there is nobody to send it to.
        nobody = admin.client.get(f"/admin/issues/{SLUG}/send")
        assert "Nobody is subscribed (confirmed) yet" in nobody.text
        admin.post("/admin/subscribers/add", {"email": "ann@example.org", "vouch": "yes"})

        # A draft is not offered for sending.
        draft = admin.client.get(f"/admin/issues/{SLUG}/send")
        assert "is a draft" in draft.text
        refused = admin.follow(admin.post(f"/admin/issues/{SLUG}/send"))
        assert Admin.notice(refused) == "Mark the issue ready before sending it."

        ready = admin.follow(admin.post(f"/admin/issues/{SLUG}/ready", {"ready": "yes"}))
        assert Admin.notice(ready) == "Marked ready to send."
        confirm = admin.client.get(f"/admin/issues/{SLUG}/send")
        assert "<strong>1</strong> subscriber now?" in confirm.text
        started = admin.post(f"/admin/issues/{SLUG}/send")
        where = started.headers["location"]
        assert Admin.notice(admin.client.get(where)).startswith("Sending started to 1 subscriber.")
        deadline = time.monotonic() + 30
        while admin.client.get(f"{where}/progress.json").json()["live"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert admin.client.get(f"{where}/progress.json").json()["sent"] == 1
        db = Database(settings.database_url)
        issue = issues.get_issue(db, SLUG)
        db.dispose()
        assert issue is not None and issue.status is IssueStatus.SENT
        # Sent: it stays sent, and a second sending needs saying so.
        kept = admin.follow(admin.post(f"/admin/issues/{SLUG}/ready", {"ready": "no"}))
        assert Admin.notice(kept) == "This issue was sent; it stays as it was."
        twice = admin.client.get(f"/admin/issues/{SLUG}/send")
        assert "was already sent" in twice.text and "Send it again to everyone" in twice.text


def test_a_bad_picture_name_saves_nothing(settings: Settings) -> None:
    with admin_client(settings) as admin:
        r = admin.post(
            "/admin/issues/new",
            files={
                "source_file": ("vol-4.1.md", EXAMPLE.read_bytes(), "text/markdown"),
                "picture": ("My Photo.jpg", EXAMPLE_HERO.read_bytes(), "image/jpeg"),
            },
        )
        assert r.status_code == 422 and "was not saved" in r.text and "letters, digits" in r.text
        db = Database(settings.database_url)
        assert issues.list_issues(db) == []
        db.dispose()


def test_a_file_that_is_not_utf8_is_refused_with_its_line(settings: Settings) -> None:
    with admin_client(settings) as admin:
        r = _upload(admin, b'---\npublication: X\nvolume: "1"\n\xff\n', picture=False)
        assert r.status_code == 422 and "not UTF-8" in r.text


def test_paste_from_the_archive_shows_the_notes_then_saves(settings: Settings) -> None:
    text = SAMPLES[0].read_text(encoding="utf-8")
    with admin_client(settings) as admin:
        r = admin.post("/admin/issues/import", {"text": text, "date": "2023-10-13"})
        assert r.status_code == 200
        assert "What the conversion did" in r.text and "<li>" in r.text
        assert 'name="source"' in r.text
        bad_date = admin.post("/admin/issues/import", {"text": text, "date": "13/10/2023"})
        assert bad_date.status_code == 422 and "YYYY-MM-DD" in bad_date.text
        assert text.splitlines()[0] in bad_date.text  # what was pasted is kept
        nothing = admin.post("/admin/issues/import", {"text": "hello"})
        assert nothing.status_code == 422 and "could not be read" in nothing.text


def test_the_list_shows_each_issues_state(settings: Settings, example_issue: Path) -> None:
    db = Database(settings.database_url)
    issues.add_issue(db, settings, example_issue, ready=True)
    db.dispose()
    with admin_client(settings) as admin:
        page = admin.client.get("/admin/issues")
        assert "Ready to send" in page.text and f"/admin/issues/{SLUG}" in page.text
        assert admin.client.get("/admin/issues/no-such-issue").status_code == 404
