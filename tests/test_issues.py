"""Storing issues: checked and rendered once when added, refused with every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from digestmail.config import Settings
from digestmail.content.source import IssueSourceError
from digestmail.db import Database
from digestmail.issues import IssueStoreError, add_issue, get_issue, list_issues
from digestmail.models import IssueStatus
from tests.campaign_helpers import ISSUE_FILE


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
