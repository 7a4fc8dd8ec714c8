"""axe-core over every public page and both emails, in Debian's Chromium.

One walk through the site as a reader takes it (subscribe with a typo, subscribe,
confirm, read the issue on the web and in print, unsubscribe), checking each page as
it is reached; then the emails as mail programs show them. Every violation is listed
with its page, rule and element, so a failure says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from digestmail.config import Settings
from digestmail.db import Database
from tests.archive_helpers import publish
from tests.axe import Violation, describe, violations
from tests.liveserver import serve
from tests.webhelpers import link_in, outbox_messages, wait_for_messages

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 375, "height": 740})
    yield page
    page.close()


def _html(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def test_every_public_page_and_email_has_no_axe_violation(
    sqlite_url: str, example_issue: Path, page: Page
) -> None:
    settings = Settings(subscribe_limit="1000/minute")
    found: dict[str, list[Violation]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state()
        found[name] = violations(page)

    with serve(settings) as url:
        page.goto(f"{url}/archive")
        check("archive, empty")

        page.goto(f"{url}/subscribe")
        check("subscribe")
        page.get_by_label("Email address").fill("maria@")
        page.get_by_role("button", name="Subscribe").click()
        check("subscribe, with a mistake")
        page.get_by_label("Email address").fill("maria.lopez@example.org")
        page.get_by_label("Name (optional)").fill("María López")
        page.get_by_role("button", name="Subscribe").click()
        check("thanks")

        [confirmation] = wait_for_messages(Path(settings.outbox_dir), 1)
        page.goto(link_in(confirmation).replace(settings.base_url, url))
        check("confirmed")
        page.goto(f"{url}/confirm/not-a-real-token")
        check("link problem")

        db = Database(settings.database_url)
        slug = publish(db, settings, example_issue)
        db.dispose()
        [issue_mail] = [
            m
            for m in outbox_messages(Path(settings.outbox_dir))
            if m["Subject"] != confirmation["Subject"]
        ]

        page.goto(f"{url}/archive")
        check("archive")
        page.goto(f"{url}/issues/{slug}")
        check("issue web view")
        page.goto(f"{url}/issues/{slug}/print")
        check("issue print view")
        page.goto(f"{url}/unsubscribe")
        check("unsubscribe help")

        page.goto(link_in(issue_mail).replace(settings.base_url, url))
        check("unsubscribe")
        page.get_by_role("button").click()
        check("goodbye")

        for name, mail in (("confirmation email", confirmation), ("issue email", issue_mail)):
            page.set_content(_html(mail))
            check(name)

    tight = Settings(subscribe_limit="1/minute")
    with serve(tight) as url:
        for _ in range(2):
            page.goto(f"{url}/subscribe")
            page.get_by_label("Email address").fill("sam@example.org")
            page.get_by_role("button", name="Subscribe").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Please try again later"
        check("rate limited")

    failing = {name: v for name, v in found.items() if v}
    report = "\n".join(f"{name}:\n{describe(v)}" for name, v in failing.items())
    assert not failing, f"axe-core found violations:\n{report}"
    assert len(found) == 15  # every page above was checked


def test_the_check_reports_what_it_finds(page: Page) -> None:
    """The helper is not blind: a page with known faults gets them named."""
    page.set_content(
        "<html><head><title>x</title></head><body><main><h1>Faults</h1>"
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        '<p style="color:#eee;background:#fff">too pale to read</p></main></body></html>'
    )
    rules = {v.rule for v in violations(page)}
    assert {"html-has-lang", "image-alt", "color-contrast"} <= rules
    assert "image-alt" in describe(violations(page))
