"""The web view every email links to, and the archive of sent issues."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import add_issue
from digestmail.models import Issue, IssueStatus
from tests.liveserver import serve


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with serve(settings) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def _mark_sent(database: Database, slug: str) -> None:
    with database.session() as session:
        session.execute(update(Issue).where(Issue.slug == slug).values(status=IssueStatus.SENT))


def test_drafts_are_not_public(
    client: httpx.Client, settings: Settings, database: Database, example_issue: Path
) -> None:
    issue = add_issue(database, settings, example_issue)
    assert client.get(f"/issues/{issue.slug}").status_code == 404
    assert issue.title not in client.get("/archive").text


def test_sent_issue_is_on_the_web_with_placeholders_filled(
    client: httpx.Client, settings: Settings, database: Database, example_issue: Path
) -> None:
    issue = add_issue(database, settings, example_issue)
    _mark_sent(database, issue.slug)

    page = client.get(f"/issues/{issue.slug}")
    assert page.status_code == 200
    assert "%%" not in page.text
    assert "Defense ministers met in Tokyo" in page.text
    assert f'href="{settings.base_url}/unsubscribe"' in page.text

    listing = client.get("/archive")
    assert listing.status_code == 200
    assert f'href="/issues/{issue.slug}"' in listing.text

    help_page = client.get("/unsubscribe")
    assert help_page.status_code == 200
    assert settings.contact_address in help_page.text


def test_unknown_issue_is_404(client: httpx.Client) -> None:
    assert client.get("/issues/no-such-issue").status_code == 404
