"""The staff admin in Debian's Chromium, as a staff member uses it, checked by axe-core.

Two walks, each on one server, in one browser. The first: sign in; upload an issue
with a mistake and see it at its line; fix it; look at the preview on a phone; send a
test and find it in the outbox; send the issue and pause, continue and cancel it while
the page follows its progress; import a list and read the report of bad rows; a form
without its token refused; signed out, every page visited is refused; ten wrong
passwords slowed down. The second, with the scheduler running in the server as
``digestmail serve`` runs it: set a rhythm, skip one of its sends, pause, continue and
cancel it; schedule an issue a few seconds ahead and watch the dashboard show the
sending start and finish without touching the page; find it in the outbox; a reader
leaves through the link in their email, and their page shows the change and its
cause; someone who marked the digest as spam is brought back. axe-core checks every
page on the way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from digestmail import events, issues, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import EventKind, EventSource, SubscriberStatus, utcnow
from tests.adminhelpers import EMAIL, PASSWORD, make_staff
from tests.axe import Violation, describe, violations
from tests.campaign_helpers import outbox_messages
from tests.conftest import EXAMPLE, EXAMPLE_HERO
from tests.liveserver import serve

pytestmark = pytest.mark.browser

SLUG = "us-japan-alliance-digest-4-1"
BROKEN = EXAMPLE.read_text(encoding="utf-8").replace(
    "- Trade officials review progress", "- Trade officials [review]() progress"
)


@pytest.fixture
def desk(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    yield page
    page.close()


def _readers(settings: Settings, n: int) -> None:
    db = Database(settings.database_url)
    with db.session() as session:
        subscribers.import_rows(
            session,
            [subscribers.ImportRow(i, f"reader{i}@example.org", f"Reader {i}") for i in range(n)],
            double_opt_in=False,
            staff="test",
            source_label="test",
            settings=settings,
        )
    db.dispose()


def test_the_admin_as_staff_use_it(
    sqlite_url: str, desk: Page, browser: Browser, artifacts_dir: Path
) -> None:
    settings = Settings(send_rate=2, batch_size=1)
    make_staff(settings)
    _readers(settings, 40)
    found: dict[str, list[Violation]] = {}
    visited: list[str] = []
    page = desk

    def check(name: str, on: Page | None = None) -> None:
        shown = on or page
        shown.wait_for_load_state()
        found[name] = violations(shown)
        visited.append(shown.url)

    def notice() -> str:
        return page.get_by_role("status").first.inner_text()

    with serve(settings) as url:
        page.goto(f"{url}/admin")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        check("sign in")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Sending now")).to_be_visible()
        check("home")

        # An issue with a mistake: the problem is shown at its line, with the line.
        page.get_by_role("link", name="Issues", exact=True).click()
        check("issues, empty")
        page.get_by_role("link", name="Add an issue").first.click()
        check("add an issue")
        page.set_input_files(
            "#source_file",
            files=[{"name": "vol-4.1.md", "mimeType": "text/markdown", "buffer": BROKEN.encode()}],
        )
        page.get_by_role("button", name="Check and save").last.click()
        problem = page.locator("ul.problems li").filter(has_text="Line 23")
        expect(problem).to_contain_text("has no URL")
        expect(problem.locator("pre")).to_have_text(
            "- Trade officials [review]() progress on supply-chain resilience"
        )
        check("add an issue, with a problem")

        # Fixed, with its picture.
        page.goto(f"{url}/admin/issues/new")
        page.set_input_files("#source_file", str(EXAMPLE))
        page.set_input_files("#picture", str(EXAMPLE_HERO))
        page.get_by_role("button", name="Check and save").last.click()
        expect(page.get_by_role("status")).to_contain_text("as a draft")
        check("issue")

        # The preview on a phone: no sideways scrolling, in the page or in the email.
        phone = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2)
        phone.context.add_cookies(page.context.cookies())
        phone.goto(f"{url}/admin/issues/{SLUG}")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        frame = phone.frame_locator("iframe[title^='The email on a phone']")
        expect(frame.get_by_text("Defense ministers set alliance priorities").first).to_be_visible()
        email = next(f for f in phone.frames if f.url.endswith("/email.html"))
        assert email.evaluate("document.documentElement.scrollWidth") <= 375
        phone.screenshot(path=str(artifacts_dir / "admin-issue-375.png"), full_page=True)
        check("issue on a phone", phone)
        phone.close()
        page.screenshot(path=str(artifacts_dir / "admin-issue-1280.png"), full_page=True)

        # A test to me, found in the outbox.
        page.get_by_role("button", name="Send a test to me").click()
        assert notice() == f"A test was sent to {EMAIL}. It is in the Outbox."
        page.get_by_role("link", name="Outbox", exact=True).click()
        row = page.get_by_role("row").filter(has_text=EMAIL)
        expect(row).to_contain_text("[TEST]")
        check("outbox")

        # Ready, then sent to everyone: pause, continue, cancel as it goes.
        page.goto(f"{url}/admin/issues/{SLUG}")
        page.get_by_role("button", name="Mark ready to send").click()
        assert notice() == "Marked ready to send."
        page.get_by_role("link", name="Send to all subscribers…").click()
        expect(page.get_by_text("Send “")).to_contain_text("40 subscribers now?")
        check("send, confirm")
        page.get_by_role("button", name="Yes, send it now").click()
        expect(page.get_by_role("status")).to_contain_text("Sending started to 40 subscribers")
        check("sending")
        sent = page.locator("[data-field=sent]").first
        before = int(sent.inner_text())
        # The figures move without reloading the page.
        expect(sent).not_to_have_text(str(before), timeout=20_000)
        page.get_by_role("button", name="Pause").click()
        assert notice().startswith("Paused.")
        page.get_by_role("button", name="Continue").click()
        assert notice() == "Sending again, from where it stopped."
        page.get_by_role("link", name="Cancel…").click()
        check("cancel, confirm")
        page.get_by_role("button", name="Yes, cancel it").click()
        assert notice().startswith("Cancelled.")
        expect(page.locator("[data-field=status_label]")).to_have_text("Cancelled")
        page.get_by_role("link", name="Sendings", exact=True).click()
        check("sendings")
        page.get_by_role("link", name="Home", exact=True).click()
        check("home, after a sending")

        # A list with bad rows: the report names them with their lines.
        page.get_by_role("link", name="Subscribers", exact=True).click()
        check("subscribers")
        page.set_input_files(
            "#file",
            files=[
                {
                    "name": "list.csv",
                    "mimeType": "text/csv",
                    "buffer": b"email,name\nnew@example.org,New\nnot an address,Bad\n",
                }
            ],
        )
        page.get_by_role("button", name="Import").click()
        bad = page.get_by_role("row").filter(has_text="not an address")
        expect(bad.get_by_role("cell").first).to_have_text("3")
        check("import report")
        page.goto(f"{url}/admin/subscribers?q=new%40example.org")
        page.get_by_role("link", name="new@example.org").click()
        check("subscriber")
        page.get_by_role("link", name="Remove or erase…").click()
        check("remove, confirm")
        page.goto(f"{url}/admin/issues/new")
        page.get_by_label("The issue's text").fill("Vol 1.1\nHeadlines:\n• Something happened\n")
        page.get_by_role("button", name="Convert").click()
        check("pasted issue")

        # A form whose token was taken out is refused, and nothing is done.
        page.goto(f"{url}/admin/subscribers")
        page.evaluate("document.querySelectorAll('input[name=csrftoken]').forEach(e => e.remove())")
        page.get_by_label("Email address").fill("forged@example.org")
        page.get_by_role("button", name="Add").click()
        expect(page.get_by_role("heading", name="Please try again")).to_be_visible()
        db = Database(settings.database_url)
        with db.session() as session:
            assert subscribers.find(session, "forged@example.org") is None
        assert issues.get_issue(db, SLUG) is not None
        db.dispose()

        # Signed out, every page seen above sends the browser to the sign-in page.
        page.goto(f"{url}/admin")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("status")).to_have_text("You are signed out.")
        for seen in {v for v in visited if "/admin/login" not in v}:
            page.goto(seen)
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        # Ten wrong passwords: from the sixth on, the form waits instead of checking.
        answers = []
        for i in range(10):
            page.get_by_label("Email address").fill(EMAIL)
            page.get_by_label("Password").fill(f"wrong guess {i}")
            page.get_by_role("button", name="Sign in").click()
            answers.append(page.get_by_role("alert").inner_text())
        assert all("do not match" in a for a in answers[:5])
        assert all("paused for a minute" in a for a in answers[5:])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("paused for a minute")
        check("sign in, slowed down")

    failing = {name: v for name, v in found.items() if v}
    report = "\n".join(f"{name}:\n{describe(v)}" for name, v in failing.items())
    assert not failing, f"axe-core found violations:\n{report}"
    assert len(found) == 19  # every page above was checked


def _unsubscribe_link(settings: Settings, email: str, url: str) -> str:
    """The unsubscribe link in the issue email sent to ``email``, at the test server."""
    [mail] = [m for m in outbox_messages(settings.outbox_dir) if parseaddr(m["To"])[1] == email]
    text = mail.get_body(("plain",))
    assert text is not None
    found = re.search(r"(\S+/unsubscribe/\S+)", text.get_content())
    assert found, "no unsubscribe link in the email"
    return found.group(1).replace(settings.base_url, url)


def test_a_scheduled_send_from_the_dashboard_and_a_reader_who_leaves(
    sqlite_url: str, desk: Page, browser: Browser, example_issue: Path, artifacts_dir: Path
) -> None:
    # The scheduler reads the schedules twice a second; the dashboard asks every 5 s.
    settings = Settings(scheduler_sync=0.5)
    make_staff(settings)
    _readers(settings, 4)
    db = Database(settings.database_url)
    issue = issues.add_issue(db, settings, example_issue)
    # reader3 once marked the digest as spam.
    events.receive(
        db,
        settings,
        [
            Normalised(
                event_id="test:spam",
                kind=EventKind.COMPLAINED,
                source=EventSource.SENDGRID,
                email="reader3@example.org",
                occurred_at=utcnow(),
                reason="spam report",
            )
        ],
    )
    found: dict[str, list[Violation]] = {}
    page = desk

    def check(name: str, on: Page | None = None) -> None:
        shown = on or page
        shown.wait_for_load_state()
        found[name] = violations(shown)

    def notice() -> str:
        return page.get_by_role("status").first.inner_text()

    def go(section: str) -> None:
        page.get_by_role("navigation", name="Admin sections").get_by_role(
            "link", name=section, exact=True
        ).click()

    with serve(settings, scheduler=True) as url:
        page.goto(f"{url}/admin")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Nothing is scheduled.")).to_be_visible()
        check("home, nothing scheduled or sent")

        # A rhythm: every other Friday; one of its sends skipped; paused, continued, cancelled.
        go("Schedule")
        check("schedule, empty")
        page.get_by_label("Time zone").last.fill("America/New_York")
        page.get_by_role("button", name="Set the rhythm").click()
        assert notice().startswith(
            "Scheduled: every 2 weeks on Friday at 09:00 (America/New_York). The first send is "
        )
        assert (
            notice().endswith("The oldest issue ready to send.") or "No issue is ready" in notice()
        )
        check("schedule, a rhythm")
        page.get_by_role("button", name=re.compile("^Skip the send of")).nth(1).click()
        assert re.fullmatch(r"The send of .+ will not go out\. The next send is .+\.", notice())
        expect(page.get_by_text("Skipped: ")).to_be_visible()
        page.get_by_role("button", name="Pause").click()
        assert notice().startswith("Paused:")
        page.get_by_role("button", name="Continue").click()
        assert notice().startswith("Continuing. The next send is ")
        page.get_by_role("link", name="Cancel…").click()
        check("schedule, cancel")
        page.get_by_role("button", name="Yes, cancel it").click()
        assert notice().startswith("Cancelled:")

        # The issue, a few seconds from now (the time zone is UTC, the form's default).
        go("Schedule")
        at = (utcnow() + timedelta(seconds=15)).replace(microsecond=0)
        page.get_by_label("Issue", exact=True).select_option(issue.slug)
        page.get_by_label("Date").first.fill(at.date().isoformat())
        page.get_by_label("Time", exact=True).first.fill(at.strftime("%H:%M:%S"))
        page.get_by_role("button", name="Schedule it").click()
        assert notice().startswith(f"Scheduled: “{issue.title}” goes out ")
        check("schedule, one issue")

        # The dashboard says what goes out next, then shows it sent, by itself.
        go("Home")
        expect(page.get_by_text("It will send")).to_contain_text(issue.title)
        check("home, the next send")
        done = page.locator("#recent ~ div tr, section[aria-labelledby=recent] tr").filter(
            has_text=issue.slug
        )
        expect(done.get_by_text("Sent", exact=True)).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Nothing is being sent right now.")).to_be_visible()
        expect(page.locator("#issues-sent-desc")).to_have_text(
            "Sent, by issue, oldest first. Vol. 4.1: 3."
        )
        page.screenshot(path=str(artifacts_dir / "admin-dashboard-1280.png"), full_page=True)
        check("home, after the scheduled send (charts)")
        go("Outbox")
        for i in range(3):
            expect(page.get_by_role("row").filter(has_text=f"reader{i}@example.org")).to_have_count(
                1
            )
        expect(page.get_by_role("row").filter(has_text="reader3@example.org")).to_have_count(0)
        go("Schedule")
        expect(page.get_by_role("cell", name=re.compile(f"^Sent “{issue.slug}”"))).to_be_visible()
        check("schedule, after the send")
        go("Sendings")
        page.get_by_role("link", name=issue.slug).first.click()
        expect(page.get_by_role("heading", name="What became of it")).to_be_visible()
        check("sending, its figures")

        # A reader leaves through the link in their email.
        reader = browser.new_page()
        reader.goto(_unsubscribe_link(settings, "reader0@example.org", url))
        reader.get_by_role("button", name="Unsubscribe").click()
        expect(reader.get_by_role("heading", name="You have been unsubscribed")).to_be_visible()
        reader.close()
        go("Subscribers")
        page.get_by_label("Address or name contains").fill("reader0@")
        page.get_by_role("button", name="Find").click()
        page.get_by_role("link", name="reader0@example.org").click()
        change = page.get_by_role("row").filter(has_text="Subscribed → Unsubscribed")
        expect(change).to_contain_text("By the unsubscribe link in an email")
        check("subscriber, their history")

        # Someone who marked the digest as spam, back on their written word.
        page.goto(f"{url}/admin/subscribers?q=reader3%40")
        page.get_by_role("link", name="reader3@example.org").click()
        expect(
            page.get_by_role("row").filter(has_text="Subscribed → Marked as spam")
        ).to_contain_text("spam report")
        page.get_by_role("link", name="Bring back…").click()
        check("subscriber, bring back")
        page.get_by_role("button", name="Bring them back").click()
        assert notice() == "Nothing changed: tick the box to confirm that they asked in writing."
        page.get_by_label("reader3@example.org asked us in writing").check()
        page.get_by_role("button", name="Bring them back").click()
        assert notice().startswith("reader3@example.org is subscribed again")
        page.screenshot(path=str(artifacts_dir / "admin-subscriber-history.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2)
        phone.context.add_cookies(page.context.cookies())
        for path in ("/admin", "/admin/schedule"):
            phone.goto(f"{url}{path}")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path
        phone.screenshot(path=str(artifacts_dir / "admin-schedule-375.png"), full_page=True)
        phone.goto(f"{url}/admin")
        phone.screenshot(path=str(artifacts_dir / "admin-dashboard-375.png"), full_page=True)
        check("home on a phone", phone)
        phone.close()

    with db.session() as session:
        left = subscribers.find(session, "reader0@example.org")
        back = subscribers.find(session, "reader3@example.org")
        assert left is not None and left.status is SubscriberStatus.UNSUBSCRIBED
        assert back is not None and back.status is SubscriberStatus.ACTIVE
    db.dispose()
    failing = {name: v for name, v in found.items() if v}
    report = "\n".join(f"{name}:\n{describe(v)}" for name, v in failing.items())
    assert not failing, f"axe-core found violations:\n{report}"
    assert len(found) == 12  # every page above was checked
