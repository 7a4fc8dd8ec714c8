"""What staff are told: by email to DIGESTMAIL_STAFF_EMAILS through the transport, else the log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from digestmail import campaigns, notify
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import SkipReason
from tests.campaign_helpers import add_subscribers, outbox_counts, outbox_messages, store_issue

SLOT = datetime(2025, 3, 14, 13, 0, tzinfo=UTC)
STAFF = ("editor@example.org", "ops@example.org")


@pytest.fixture
def plain() -> Settings:
    """Settings without a database of their own (these tests need none)."""
    return Settings()


@pytest.fixture
def staffed(plain: Settings) -> Settings:
    return plain.model_copy(update={"staff_emails": STAFF})


@pytest.fixture
def staffed_db(settings: Settings) -> Settings:
    return settings.model_copy(update={"staff_emails": STAFF})


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _staff_mail(settings: Settings) -> list[tuple[str, str, str]]:
    return [
        (str(m["To"]), str(m["Subject"]), _text(m))
        for m in outbox_messages(settings.outbox_dir)
        if str(m["To"]) in STAFF
    ]


def test_without_staff_addresses_the_lines_go_to_the_log(
    plain: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = plain
    caplog.set_level(logging.INFO, logger="digestmail.notify")
    notify.occurrence_skipped(
        settings, 3, SLOT, "America/New_York", SkipReason.NO_READY_ISSUE, None
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "digestmail.notify"]
    assert lines == [
        f"{settings.publication}: scheduled send skipped",
        "Nothing was sent at Fri 14 Mar 2025 09:00 EDT (America/New_York) (schedule 3): "
        "no issue was ready to send.",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.iterdir())


def test_with_staff_addresses_each_gets_a_short_plain_email(staffed: Settings) -> None:
    notify.occurrence_missed(
        staffed, 2, SLOT, "Asia/Tokyo", timedelta(hours=9), 21600, "policy-digest-9-1"
    )
    notify.reminder(staffed, 2, SLOT, "UTC", None)
    mail = _staff_mail(staffed)
    assert sorted(to for to, _, _ in mail) == sorted(STAFF * 2)
    missed = [body for _, subject, body in mail if subject.endswith("send missed")]
    assert "Fri 14 Mar 2025 22:00 JST (Asia/Tokyo)" in missed[0]
    assert "9 h 0 min later is past the 6 h 0 min a send may run late" in missed[0]
    assert "policy-digest-9-1" in missed[0] and "Nothing was sent" in missed[0]
    reminder = [s for _, s, _ in mail if "nothing ready" in s]
    assert reminder and "digestmail" not in "".join(b for _, _, b in mail)  # no commands


def test_every_campaign_run_ends_with_a_report_to_staff(
    database: Database, staffed_db: Settings
) -> None:
    staffed = staffed_db
    add_subscribers(database, 3)
    slug = store_issue(database, staffed)
    cid = campaigns.create_campaign(database, staffed, slug)
    campaigns.run_campaign(database, staffed, cid)
    (report,) = [m for m in _staff_mail(staffed) if m[0] == STAFF[0]]
    assert report[1] == f"{staffed.publication}: campaign {cid} ({slug}) sent"
    assert "Sent: 3. Rejected: 0." in report[2] and "Sending took" in report[2]
    assert outbox_counts(staffed.outbox_dir)["user0@example.com"] == 1


def test_a_notice_that_cannot_be_sent_is_logged_and_stops_nothing(
    staffed: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the outbox folder should be")
    broken = staffed.model_copy(update={"outbox_dir": blocked})
    notify.campaign_resumed(broken, 7, "policy-digest-9-1", 10, True)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("staff notice not sent") for m in messages)
    assert (
        "Campaign 7 (policy-digest-9-1) was resumed automatically: its sender's process is gone."
        in messages
    )
