"""A person on a 375 px phone fills the form in Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from digestmail.config import Settings
from tests.liveserver import serve
from tests.webhelpers import link_in, wait_for_messages

pytestmark = pytest.mark.browser


@pytest.fixture
def live(sqlite_url: str) -> Iterator[tuple[str, Settings]]:
    settings = Settings()
    with serve(settings) as url:
        yield url, settings


def test_subscribe_on_a_phone(
    live: tuple[str, Settings], artifacts_dir: Path, browser: Browser
) -> None:
    url, settings = live
    page = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2)
    page.goto(f"{url}/subscribe")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    page.screenshot(path=str(artifacts_dir / "subscribe-375.png"), full_page=True)

    # As a person would: by the visible labels, typing, pressing the button.
    page.get_by_label("Email address").fill("maria.lopez@example.org")
    page.get_by_label("Name (optional)").fill("María López")
    box = page.locator("#website").bounding_box()
    assert box is None or box["x"] + box["width"] <= 0  # the honeypot is off-screen
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Thank you")
    assert "maria.lopez@example.org" in page.content()
    page.screenshot(path=str(artifacts_dir / "subscribe-thanks-375.png"), full_page=True)

    [mail] = wait_for_messages(Path(settings.outbox_dir), 1)
    page.goto(link_in(mail).replace(settings.base_url, url))
    assert page.get_by_role("heading", level=1).inner_text() == "You are subscribed"
    page.screenshot(path=str(artifacts_dir / "confirmed-375.png"), full_page=True)

    # A typo gets a clear message, the name is kept, focus styles exist.
    page.goto(f"{url}/subscribe")
    page.get_by_label("Email address").fill("maria@")
    page.get_by_label("Name (optional)").fill("María")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").is_visible()
    assert page.get_by_label("Name (optional)").input_value() == "María"
    page.get_by_label("Email address").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.screenshot(path=str(artifacts_dir / "subscribe-error-375.png"), full_page=True)

    (artifacts_dir / "confirmation-email.html").write_text(
        mail.get_body(preferencelist=("html",)).get_content(),  # type: ignore[union-attr]
        encoding="utf-8",
    )
    page.goto((artifacts_dir / "confirmation-email.html").as_uri())
    page.screenshot(path=str(artifacts_dir / "confirmation-email-375.png"), full_page=True)
    page.close()
