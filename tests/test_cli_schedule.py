"""``digestmail schedule …`` and ``issue ready|unready`` as staff type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digestmail.cli import app
from digestmail.config import Settings
from digestmail.db import Database
from tests.campaign_helpers import add_subscribers, store_volume

runner = CliRunner()


@pytest.fixture
def db(sqlite_url: str) -> Database:
    return Database(sqlite_url)


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _slug(db: Database, tmp_path: Path, volume: str = "9.2", ready: bool = False) -> str:
    return store_volume(db, Settings(), tmp_path, volume, "2024-03-15", ready=ready)


def test_a_one_off_send_is_scheduled_by_slug(db: Database, tmp_path: Path) -> None:
    slug = _slug(db, tmp_path)
    code, out = _invoke("schedule", slug, "--at", "2030-03-15T09:00", "--tz", "America/New_York")
    assert code == 0, out
    assert "Schedule 1:" in out and "2030-03-15T09:00-04:00" in out and "marked ready" in out
    issues = json.loads(_invoke("issue", "list", "--json")[1])
    assert issues[0]["status"] == "ready"

    code, out = _invoke("schedule", slug, "--at", "2030-03-16T09:00")
    assert code == 1 and "already scheduled" in out and "schedule move 1" in out
    code, out = _invoke("schedule", slug)
    assert code != 0 and "--at" in out  # the one-off needs its time
    code, out = _invoke("schedule", slug, "--help")
    assert code == 0 and f"schedule {slug} [OPTIONS]" in " ".join(out.split())


@pytest.mark.parametrize(
    ("at", "said"),
    [
        ("2001-01-01T09:00", "is in the past"),
        ("2030-03-10T02:30", "does not exist in America/New_York: the clocks skip that hour"),
        ("2030-03-10T02:30", "Choose another time, such as 01:30 or 03:30."),
        ("2030-11-03T01:30", "happens twice in America/New_York (the clocks go back that night)"),
        ("next friday", "is not a date and time: 2025-03-14T09:00"),
    ],
)
def test_a_time_that_cannot_be_is_refused_in_one_line(
    db: Database, tmp_path: Path, at: str, said: str
) -> None:
    slug = _slug(db, tmp_path)
    code, out = _invoke("schedule", slug, "--at", at, "--tz", "America/New_York")
    assert code == 1 and said in " ".join(out.split())
    assert len(out.strip().splitlines()) <= 3  # one sentence (wrapped at most)
    assert json.loads(_invoke("schedule", "list", "--json")[1])["schedules"] == []


def test_an_ambiguous_time_names_both_offsets_to_choose_from(db: Database, tmp_path: Path) -> None:
    slug = _slug(db, tmp_path)
    code, out = _invoke("schedule", slug, "--at", "2030-11-03T01:30", "--tz", "America/New_York")
    flat = "".join(out.split())
    assert code == 1 and "2030-11-03T01:30-04:00" in flat and "2030-11-03T01:30-05:00" in flat
    code, out = _invoke("schedule", slug, "--at", "2030-11-03T01:30-05:00")
    assert code == 0, out


def test_unknown_and_sent_issues_are_refused(db: Database, tmp_path: Path) -> None:
    code, out = _invoke("schedule", "no-such-issue", "--at", "2030-03-15T09:00")
    assert code == 1 and "There is no issue 'no-such-issue'" in out
    add_subscribers(db, 2)
    slug = _slug(db, tmp_path)
    assert _invoke("send", slug, "--yes")[0] == 0
    code, out = _invoke("schedule", slug, "--at", "2030-03-15T09:00")
    assert code == 1 and "already sent" in out and "--again" in out
    code, out = _invoke("issue", "unready", slug)
    assert code == 1 and "already sent" in out


def test_send_refuses_an_empty_audience(db: Database, tmp_path: Path) -> None:
    add_subscribers(db, 2, status="pending")
    slug = _slug(db, tmp_path)
    code, out = _invoke("send", slug, "--yes")
    assert code == 1 and "no active subscribers" in out
    assert json.loads(_invoke("campaign", "list", "--json")[1]) == []
    assert json.loads(_invoke("issue", "list", "--json")[1])[0]["status"] == "draft"


def test_a_cadence_its_list_and_its_changes(db: Database, tmp_path: Path) -> None:
    code, out = _invoke(
        "schedule", "cadence", "--every", "2w", "--on", "fri", "--at", "09:00",
        "--tz", "America/New_York", "--from", "2030-03-01",
    )  # fmt: skip
    assert code == 0, out
    flat = " ".join(out.split())
    assert "Schedule 1: every 2 weeks on Friday at 09:00 America/New_York" in flat
    assert "2030-03-01T09:00-05:00" in flat and "No issue is ready yet" in flat

    code, out = _invoke("schedule", "list")
    assert code == 0 and "none ready" in out and "2030-03-01T09:00-05:00" in out
    slug = _slug(db, tmp_path, ready=True)
    listed = json.loads(_invoke("schedule", "list", "--json")[1])
    (cadence,) = listed["schedules"]
    assert cadence["issue"] == slug and cadence["next_run"] == "2030-03-01T09:00:00-05:00"
    assert cadence["every"] == {"count": 2, "unit": "week"} and cadence["weekday"] == 4

    code, out = _invoke("schedule", "skip", "1", "--on", "2030-03-01")
    assert (
        code == 0 and "will not send" in out and "2030-03-15T09:00-04:00" in " ".join(out.split())
    )
    code, out = _invoke("schedule", "skip", "1", "--on", "2030-03-08")
    assert code == 1 and "sends nothing on 2030-03-08" in out and "2030-03-15" in out
    code, out = _invoke("schedule", "move", "1", "--at", "2030-03-20T09:00")
    assert code == 1 and "is a cadence" in out and "schedule skip 1" in out
    assert _invoke("schedule", "pause", "1") == (0, "Schedule 1 paused.\n")
    code, out = _invoke("schedule", "pause", "1")
    assert code == 1 and "paused already" in out
    code, out = _invoke("schedule", "resume", "1")
    assert code == 0 and "Next send:" in out
    assert _invoke("schedule", "cancel", "1")[0] == 0
    code, out = _invoke("schedule", "cancel", "1")
    assert code == 1 and "Schedule 1 is cancelled: it cannot be cancelled." in out
    assert _invoke("schedule", "list") == (0, "Nothing is scheduled.\n")
    code, out = _invoke("schedule", "cancel", "42")
    assert code == 1 and "There is no schedule 42" in out


def test_a_cadence_that_cannot_be_read_says_what_to_write(db: Database) -> None:
    base = ["schedule", "cadence", "--at", "09:00"]
    code, out = _invoke(*base, "--every", "fortnightly", "--on", "fri")
    assert code == 1 and "2w for every other week" in out
    code, out = _invoke(*base, "--every", "2w")
    assert code == 1 and "needs its weekday: add --on fri" in out
    code, out = _invoke(*base, "--every", "2w", "--on", "fri", "--tz", "Eastern")
    assert code == 1 and "is not a time zone" in out


def test_ready_unready_and_the_one_off_waiting(db: Database, tmp_path: Path) -> None:
    slug = _slug(db, tmp_path)
    assert _invoke("issue", "ready", slug) == (0, f"{slug} is ready.\n")
    assert _invoke("schedule", slug, "--at", "2030-03-15T09:00Z")[0] == 0
    code, out = _invoke("issue", "unready", slug)
    assert code == 0 and f"{slug} is draft." in out
    assert "that send is skipped" in " ".join(out.split()) and "schedule cancel 1" in out
    code, out = _invoke("schedule", "move", "1", "--at", "2030-04-01T10:00", "--tz", "Asia/Tokyo")
    assert code == 0 and "2030-04-01T10:00+09:00" in " ".join(out.split())
    code, out = _invoke("issue", "ready", "nope")
    assert code == 1 and "There is no issue 'nope'" in out


def test_the_scheduler_refuses_a_database_that_is_not_set_up(tmp_path: Path) -> None:
    code, out = _invoke("scheduler")
    assert code == 1 and "has no tables yet: run `digestmail init` first" in " ".join(out.split())
