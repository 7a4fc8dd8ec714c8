"""``/feed.atom``: sent issues for feed readers, linked from the archive."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import add_issue, get_issue
from tests.archive_helpers import publish
from tests.campaign_helpers import ISSUE_FILE
from tests.liveserver import serve

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with serve(settings) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def _feed(client: httpx.Client) -> ET.Element:
    answer = client.get("/feed.atom")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=900"
    root = ET.fromstring(answer.content)
    assert root.tag == f"{ATOM}feed"
    return root


def test_an_empty_archive_is_a_valid_feed(client: httpx.Client, settings: Settings) -> None:
    root = _feed(client)
    assert root.findall(f"{ATOM}entry") == []
    assert root.findtext(f"{ATOM}title") == settings.publication
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {
        "self": f"{settings.base_url}/feed.atom",
        "alternate": f"{settings.base_url}/archive",
    }
    assert root.findtext(f"{ATOM}updated")


def test_sent_issues_newest_first_and_drafts_never(
    client: httpx.Client,
    settings: Settings,
    database: Database,
    example_issue: Path,
    tmp_path: Path,
) -> None:
    older = publish(database, settings, ISSUE_FILE)
    newer = publish(database, settings, example_issue)
    draft = tmp_path / "draft.md"
    draft.write_text(
        ISSUE_FILE.read_text(encoding="utf-8").replace('"9.1"', '"9.2"'), encoding="utf-8"
    )
    draft_slug = add_issue(database, settings, draft).slug

    root = _feed(client)
    entries = root.findall(f"{ATOM}entry")
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert ids == [f"{settings.base_url}/issues/{s}" for s in (newer, older)]
    assert draft_slug not in client.get("/feed.atom").text

    first = entries[0]
    stored = get_issue(database, newer)
    assert stored is not None and stored.sent_at is not None
    assert first.findtext(f"{ATOM}title") == stored.title
    assert first.findtext(f"{ATOM}summary") == stored.preheader
    (link,) = first.findall(f"{ATOM}link")
    assert link.get("href") == f"{settings.base_url}/issues/{newer}"
    published = datetime.fromisoformat(first.findtext(f"{ATOM}published") or "")
    assert abs((published - stored.sent_at).total_seconds()) < 1
    assert root.findtext(f"{ATOM}updated") == first.findtext(f"{ATOM}updated")
    # Every entry's link works and is the issue's web page.
    for entry in entries:
        (entry_link,) = entry.findall(f"{ATOM}link")
        path = entry_link.get("href", "").removeprefix(settings.base_url)
        assert client.get(path).status_code == 200


def test_the_archive_links_to_the_feed(client: httpx.Client) -> None:
    page = client.get("/archive").text
    assert (
        '<link rel="alternate" type="application/atom+xml" '
        f'title="{Settings().publication} (Atom feed)" href="/feed.atom">'
    ) in page
    assert '<a href="/feed.atom" type="application/atom+xml">Atom feed</a>' in page
