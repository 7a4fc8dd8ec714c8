"""The staff admin in Debian's Chromium, as a staff member uses it, checked by axe-core.

One walk through the admin on one server and one browser: sign in; upload an issue
with a mistake and see it at its line; fix it; look at the preview on a phone; send a
test and find it in the outbox; send the issue and pause, continue and cancel it while
the page follows its progress; import a list and read the report of bad rows; a form
without its token refused; signed out, every page visited is refused; ten wrong
passwords slowed down. axe-core checks every page on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from digestmail import issues, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from tests.adminhelpers import EMAIL, PASSWORD, make_staff
from tests.axe import Violation, describe, violations
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
