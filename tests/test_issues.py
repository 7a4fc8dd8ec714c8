"""Storing issues: checked and rendered once when added, refused with every problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from digestmail.config import Settings
from digestmail.content.source import SUBJECT_MAX, IssueSourceError, parse_issue
from digestmail.db import Database
from digestmail.issues import (
    IssueAlreadySent,
    IssueStoreError,
    add_issue,
    get_issue,
    list_issues,
    set_ready,
    store_issue,
)
from digestmail.models import Issue as StoredIssue
from digestmail.models import IssueStatus, max_length
from tests.campaign_helpers import ISSUE_FILE
from tests.test_content_source import issue_source


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    path = tmp_path / name
    path.write_text(ISSUE_FILE.read_text().replace(old, new), encoding="utf-8")
    return path


def test_add_stores_the_rendered_issue_with_placeholders(
    database: Database, settings: Settings
) -> None:
    issue = add_issue(database, settings, ISSUE_FILE)

    assert issue.slug == "policy-digest-9-1" and issue.status is IssueStatus.DRAFT
    stored = get_issue(database, issue.slug)
    assert stored is not None
    assert stored.volume == "9.1" and stored.issue_date is not None
    assert stored.publication == "Policy Digest"
    assert stored.source == ISSUE_FILE.read_text()
    assert "Allies agree" in stored.subject
    # Rendered once, per-recipient values left for the send.
    assert "%%unsubscribe_url:html%%" in stored.html
    assert "%%unsubscribe_url%%" in stored.text
    assert "<html" in stored.html.lower()


def test_ready_flag_and_replacing_an_unsent_issue(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    add_issue(database, settings, ISSUE_FILE)
    edited = _variant(tmp_path, "edited.md", "Parliament debates", "Parliament passes")

    issue = add_issue(database, settings, edited, ready=True)

    assert issue.status is IssueStatus.READY
    (only,) = list_issues(database)
    assert "Parliament passes" in only.text and only.id == issue.id


def test_a_sent_issue_cannot_be_replaced(database: Database, settings: Settings) -> None:
    issue = add_issue(database, settings, ISSUE_FILE)
    with database.session() as session:
        stored = session.get(type(issue), issue.id)
        assert stored is not None
        stored.status = IssueStatus.SENT

    with pytest.raises(IssueStoreError, match="already sent"):
        add_issue(database, settings, ISSUE_FILE)
    stored_after = get_issue(database, issue.slug)
    assert stored_after is not None and stored_after.status is IssueStatus.SENT


def test_a_file_with_problems_is_refused_and_nothing_is_stored(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    bad = _variant(tmp_path, "bad.md", "## Headlines", "## Headlinez")

    with pytest.raises(IssueSourceError) as caught:
        add_issue(database, settings, bad)

    assert caught.value.problems and str(bad) in str(caught.value)
    assert list_issues(database) == []


def test_list_is_newest_first(database: Database, settings: Settings, tmp_path: Path) -> None:
    add_issue(database, settings, ISSUE_FILE)
    newer = _variant(
        tmp_path, "newer.md", 'volume: "9.1"\ndate: 2024-03-01', 'volume: "9.2"\ndate: 2024-03-15'
    )
    add_issue(database, settings, newer)

    assert [i.volume for i in list_issues(database)] == ["9.2", "9.1"]


def test_issue_add_stores_values_at_every_limit(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """What check accepts, PostgreSQL stores: every column filled to its size."""
    slug_max = max_length(StoredIssue.slug)
    cases = [
        {
            "publication": "日" * max_length(StoredIssue.publication),
            "volume": "9" * max_length(StoredIssue.volume),
            "title": "T" * SUBJECT_MAX,
            "preheader": "P" * max_length(StoredIssue.preheader),
        },
        {"publication": "p" * (slug_max - 5), "volume": "9.10"},  # slug at its limit
    ]
    for i, values in enumerate(cases):
        path = tmp_path / f"limits-{i}.md"
        path.write_text(issue_source(**values), encoding="utf-8")
        issue = add_issue(database, settings, path)
        stored = get_issue(database, issue.slug)
        assert stored is not None
        for key, value in values.items():
            assert getattr(stored, key) == value
    assert len(cases[1]["publication"]) + 5 == slug_max


@settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    publication=st.text(max_size=210),
    volume=st.text(max_size=36),
    title=st.none() | st.text(max_size=310),
    preheader=st.none() | st.text(max_size=310),
)
def test_property_issue_add_stores_everything_check_accepts(
    database: Database,
    settings: Settings,
    tmp_path: Path,
    publication: str,
    volume: str,
    title: str | None,
    preheader: str | None,
) -> None:
    text = issue_source(publication=publication, volume=volume, title=title, preheader=preheader)
    result = parse_issue(text)
    if result.issue is None:
        assert result.errors
        return
    path = tmp_path / "issue.md"
    path.write_text(text, encoding="utf-8")
    stored = add_issue(database, settings, path)
    assert (stored.publication, stored.volume) == (result.issue.publication, result.issue.volume)
    assert get_issue(database, result.issue.slug) is not None


def test_store_from_text_and_set_ready(database: Database, settings: Settings) -> None:
    text = ISSUE_FILE.read_text(encoding="utf-8")
    issue = store_issue(database, settings, text, name="upload.md")
    assert issue.status is IssueStatus.DRAFT and issue.source == text
    with pytest.raises(IssueSourceError) as refused:
        store_issue(database, settings, text.replace("volume:", "volum:"), name="upload.md")
    assert refused.value.path == "upload.md" and refused.value.problems
    ready = set_ready(database, issue.slug, True)
    assert ready is not None and ready.status is IssueStatus.READY
    assert get_issue(database, issue.slug).status is IssueStatus.READY  # type: ignore[union-attr]
    assert set_ready(database, issue.slug, False).status is IssueStatus.DRAFT  # type: ignore[union-attr]
    assert set_ready(database, "no-such-issue", True) is None
    with database.session() as session:
        session.execute(update(StoredIssue).values(status=IssueStatus.SENT))
    with pytest.raises(IssueAlreadySent) as sent:
        set_ready(database, issue.slug, False)
    assert sent.value.slug == issue.slug
    with pytest.raises(IssueAlreadySent):
        store_issue(database, settings, text)
    assert get_issue(database, issue.slug).status is IssueStatus.SENT  # type: ignore[union-attr]
