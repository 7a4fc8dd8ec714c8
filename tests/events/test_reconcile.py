"""Reading SendGrid's suppression lists back, through the official client and the fake."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from digestmail import subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events import reconcile as rc
from digestmail.models import SubscriberStatus
from tests.campaign_helpers import add_subscribers
from tests.fakes.sendgrid import FakeSendGrid

KEY = "SG.reconcile-test"


def _settings(settings: Settings, fake: FakeSendGrid, key: str = KEY) -> Settings:
    return settings.model_copy(
        update={"sendgrid_api_key": SecretStr(key), "sendgrid_api_host": fake.url}
    )


def _status(db: Database, email: str) -> SubscriberStatus:
    with db.session() as s:
        sub = subscribers.find(s, email)
        assert sub is not None
        return sub.status


def test_every_list_is_read_page_by_page_applied_and_safe_to_run_twice(
    database: Database, settings: Settings
) -> None:
    add_subscribers(database, 6)
    now = int(time.time())
    with FakeSendGrid(api_key=KEY) as fake:
        fake.suppressions = {
            "bounces": [
                {
                    "created": now - 100,
                    "email": "user1@example.com",
                    "reason": "550 5.1.1 gone",
                    "status": "5.1.1",
                },
                *(
                    {"created": now - 1000 - i, "email": f"stranger{i}@example.net", "reason": "x"}
                    for i in range(1200)
                ),
            ],
            "spam_reports": [{"created": now - 50, "email": "USER2@example.com"}],
            "unsubscribes": [{"created": now - 50, "email": "user3@example.com"}],
            "invalid_emails": [
                {
                    "created": now - 50,
                    "email": "user4@example.com",
                    "reason": "Mail domain mentioned in email address is unknown",
                }
            ],
            "blocks": [
                {
                    "created": now - 50,
                    "email": "user5@example.com",
                    "reason": "421 busy",
                    "status": "4.0.0",
                }
            ],
        }
        s = _settings(settings, fake)
        report = rc.reconcile(database, s)
        assert report.entries == {
            "bounces": 1201,
            "blocks": 1,
            "spam_reports": 1,
            "invalid_emails": 1,
            "unsubscribes": 1,
        }
        assert sorted((c.email, c.status.value, c.list_name) for c in report.changed) == [
            ("user1@example.com", "bounced", "bounces"),
            ("user2@example.com", "complained", "spam_reports"),
            ("user3@example.com", "unsubscribed", "unsubscribes"),
            ("user4@example.com", "bounced", "invalid_emails"),
        ]
        bounce_pages = [int(q["offset"]) for name, q in fake.list_queries if name == "bounces"]
        assert bounce_pages == [0, 500, 1000]
        assert all(q["limit"] == "500" and "start_time" not in q for _, q in fake.list_queries)
        again = rc.reconcile(database, s)
        assert again.stored == 0 and again.changed == []
    assert _status(database, "user5@example.com") is SubscriberStatus.ACTIVE  # one block
    assert _status(database, "user0@example.com") is SubscriberStatus.ACTIVE
    with database.session() as session:
        record = subscribers.record_of(session, s, "user5@example.com")
    assert record is not None and record.soft_bounce_score == 1


def test_since_limits_what_is_read(database: Database, settings: Settings) -> None:
    add_subscribers(database, 3)
    now = int(time.time())
    with FakeSendGrid(api_key=KEY) as fake:
        fake.suppressions = {
            "bounces": [
                {"created": now - 10 * 86400, "email": "user1@example.com"},
                {"created": now - 3600, "email": "user2@example.com"},
            ]
        }
        since = datetime.now(UTC) - timedelta(days=2)
        report = rc.reconcile(database, _settings(settings, fake), since=since)
        assert {q["start_time"] for _, q in fake.list_queries} == {str(int(since.timestamp()))}
    assert [c.email for c in report.changed] == ["user2@example.com"]
    assert _status(database, "user1@example.com") is SubscriberStatus.ACTIVE


def test_sendgrid_refusing_is_an_error_with_its_words(
    database: Database, settings: Settings
) -> None:
    with FakeSendGrid(api_key=KEY) as fake, pytest.raises(rc.ReconcileError) as raised:
        rc.reconcile(database, _settings(settings, fake, key="SG.wrong"))
    assert raised.value.status == 401 and "authorization grant" in raised.value.reason
    with pytest.raises(rc.NoApiKey):
        rc.reconcile(database, settings)
