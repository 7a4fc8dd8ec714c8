"""The rendered issue in a real browser (Debian's Chromium through Playwright).

One browser for the module; each case opens the email as a recipient would see it
(placeholders substituted) at a phone and a desktop width, and saves a screenshot.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, FloatRect, Locator, Page

from digestmail.config import Settings
from digestmail.content.source import load_issue
from digestmail.media import MediaStore
from digestmail.placeholders import substitute
from digestmail.render import recipient_values, render_issue, webview_url
from tests.conftest import EXAMPLE, EXAMPLE_HERO

pytestmark = pytest.mark.browser

# Links in the email point here; no server listens, the picture is served by ``_open``.
BASE_URL = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def email_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example issue as one recipient receives it, written to a local file URL.

    Its picture is the example's own, in a media folder; the browser is answered with
    that file for the picture's URL (``_open``), so the page needs no network and the
    layout has the real image.
    """
    folder = tmp_path_factory.mktemp("email")
    (folder / "media").mkdir()
    shutil.copyfile(EXAMPLE_HERO, folder / "media" / EXAMPLE_HERO.name)
    # Module-scoped: runs before the per-test environment, so it names its own key.
    settings = Settings(
        base_url=BASE_URL, secret_key="test-secret-" + "x" * 32, media_dir=folder / "media"
    )
    issue = load_issue(EXAMPLE, media=MediaStore.of(settings))
    rendered = render_issue(issue, settings)
    values = recipient_values(
        settings,
        name="Ann Smith",
        email="ann@example.org",
        unsubscribe_url="https://digest.example.org/unsubscribe/InRva2VuIg.ZZZ?x=1&y=2",
        webview_url=webview_url(settings, issue.slug),
    )
    page = folder / "email.html"
    page.write_text(substitute(rendered.html, values), encoding="utf-8")
    return page.as_uri()


def _open(
    browser: Browser, url: str, width: int, scheme: Literal["light", "dark"] = "light"
) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.route(
        f"{BASE_URL}/media/{EXAMPLE_HERO.name}", lambda route: route.fulfill(path=EXAMPLE_HERO)
    )
    page.goto(url)
    page.wait_for_load_state("load")
    return page


def test_phone_width_has_no_sideways_scrolling(
    browser: Browser, email_page: str, artifacts_dir: Path
) -> None:
    page = _open(browser, email_page, 375)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        # Nothing sticks out of the viewport, the hero included, and it did load.
        widest = page.evaluate(
            "Math.max(...[...document.querySelectorAll('body *')]"
            ".map(e => e.getBoundingClientRect().right))"
        )
        assert widest <= 375.5
        hero = page.locator("img").first
        assert hero.evaluate("img => img.complete && img.naturalWidth > 0")
        assert _box(hero)["width"] == pytest.approx(375, abs=1)
        # Body text stays readable: 16 px and off the screen edge.
        item = page.locator("p.item").first
        assert item.evaluate("p => parseFloat(getComputedStyle(p).fontSize)") >= 16
        assert 16 <= _box(item)["x"] <= 24
        page.screenshot(path=artifacts_dir / "render-375.png", full_page=True)
    finally:
        page.close()


def test_desktop_width_centres_the_600px_column(
    browser: Browser, email_page: str, artifacts_dir: Path
) -> None:
    page = _open(browser, email_page, 1024)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
        box = _box(page.locator(".dm-mast"))
        assert box["width"] == pytest.approx(600, abs=1)
        left, right = box["x"], 1024 - (box["x"] + box["width"])
        assert left == pytest.approx(right, abs=2)
        # Every content block shares that column.
        for selector in (".dm-card", "p.item"):
            for block in page.locator(selector).all():
                b = _box(block)
                assert b["x"] >= box["x"] - 0.5
                assert b["x"] + b["width"] <= box["x"] + box["width"] + 0.5
        page.screenshot(path=artifacts_dir / "render-1024.png", full_page=True)
    finally:
        page.close()


def test_dark_mode_turns_the_page_dark_and_keeps_text_readable(
    browser: Browser, email_page: str, artifacts_dir: Path
) -> None:
    page = _open(browser, email_page, 375, scheme="dark")
    try:
        colours = page.evaluate(
            """() => {
                const item = document.querySelector('p.item');
                const card = item.closest('.dm-card');
                return [getComputedStyle(card).backgroundColor, getComputedStyle(item).color];
            }"""
        )
        background, text = (_rgb(c) for c in colours)
        assert _luminance(background) < 0.1
        assert _luminance(text) > 0.6
        page.screenshot(path=artifacts_dir / "render-375-dark.png", full_page=True)
    finally:
        page.close()


def _box(locator: Locator) -> FloatRect:
    box = locator.bounding_box()
    assert box is not None, "element is not visible"
    return box


def _rgb(css: str) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return r, g, b


def _luminance(rgb: tuple[float, float, float]) -> float:
    """Relative luminance (WCAG), 0 for black and 1 for white."""

    def channel(v: float) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
