"""The Event Webhook over HTTP: SendGrid's signature, the batch, and what each event does.

Events are signed the way SendGrid signs them, with a key pair made for the session
(``tests/signing.py``), and posted to the real app served by uvicorn.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from digestmail import subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import (
    ChangeCause,
    Event,
    EventKind,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from tests.campaign_helpers import deliveries, sent_campaign
from tests.liveserver import serve
from tests.signing import SIGNATURE, TIMESTAMP, Signer, body_of, sg_event

URL = "/hooks/sendgrid/events"


def post(client: httpx.Client, signer: Signer, events: list[dict[str, object]]) -> httpx.Response:
    body = body_of(events)
    return client.post(URL, content=body, headers=signer.headers(body))


def status_of(db: Database, email: str) -> SubscriberStatus:
    with db.session() as session:
        sub = subscribers.find(session, email)
        assert sub is not None
        return sub.status


def stored(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


@pytest.fixture
def campaign(
    database: Database, events_settings: Settings
) -> tuple[int, dict[str, tuple[int, int]]]:
    cid = sent_campaign(database, events_settings, 6)
    return cid, deliveries(database, cid)


def args(campaign: tuple[int, dict[str, tuple[int, int]]], email: str) -> dict[str, str]:
    """The custom args SendGrid echoes back for a message of the campaign."""
    cid, rows = campaign
    delivery_id, subscriber_id = rows[email]
    return {
        "campaign_id": str(cid),
        "subscriber_id": str(subscriber_id),
        "delivery_id": str(delivery_id),
    }


# --- the policy, event by event -----------------------------------------------------


@pytest.mark.parametrize(
    ("event", "fields", "expected"),
    [
        ("bounce", {"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 unknown"}, "bounced"),
        ("bounce", {"type": "blocked", "status": "4.2.2", "reason": "mailbox full"}, "active"),
        ("bounce", {"type": "bounce", "bounce_classification": "Expired"}, "active"),
        ("dropped", {"reason": "Bounced Address"}, "bounced"),
        ("dropped", {"reason": "Invalid"}, "bounced"),
        ("dropped", {"reason": "Spam Reporting Address"}, "complained"),
        ("dropped", {"reason": "Unsubscribed Address"}, "unsubscribed"),
        ("dropped", {"reason": "Invalid SMTPAPI header"}, "active"),
        ("spamreport", {}, "complained"),
        ("unsubscribe", {}, "unsubscribed"),
        ("group_unsubscribe", {"asm_group_id": 1}, "unsubscribed"),
        ("deferred", {"attempt": "3", "response": "421 try later"}, "active"),
        ("delivered", {"response": "250 OK"}, "active"),
        ("open", {}, "active"),
        ("click", {"url": "https://example.org/"}, "active"),
        ("processed", {}, "active"),
        ("group_resubscribe", {}, "active"),
    ],
)
def test_each_event_does_what_the_policy_says(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
    event: str,
    fields: dict[str, object],
    expected: str,
) -> None:
    email = "user1@example.com"
    ev = sg_event(event, email, **args(campaign, email), **fields)
    response = post(events_client, webhook_signer, [ev])
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert status_of(database, email) == SubscriberStatus(expected)
    assert status_of(database, "user2@example.com") is SubscriberStatus.ACTIVE
    with database.session() as session:
        row = session.scalars(select(Event)).one()
        assert row.delivery_id == campaign[1][email][0]
        assert row.campaign_id == campaign[0]
        assert row.payload == ev
        assert row.applied_at is not None
        record = subscribers.record_of(session, Settings(), email)
    assert record is not None
    if expected != "active":
        change = record.changes[-1]
        assert change.new_status == SubscriberStatus(expected)
        assert change.old_status is SubscriberStatus.ACTIVE
        assert change.cause is ChangeCause.EVENT
        assert change.provider_event_id == f"sendgrid:{ev['sg_event_id']}"
    if fields.get("type") == "blocked":
        assert record.soft_bounce_score == 1


def test_a_complaint_is_never_downgraded_by_a_later_bounce_or_unsubscribe(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    email = "user3@example.com"
    a = args(campaign, email)
    batch = [
        sg_event("spamreport", email, **a),
        sg_event("unsubscribe", email, **a),
        sg_event("bounce", email, type="bounce", **a),
    ]
    assert post(events_client, webhook_signer, batch).status_code == 200
    assert status_of(database, email) is SubscriberStatus.COMPLAINED


def test_events_without_custom_args_find_the_subscriber_by_address(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    """Mail sent before events carried ids: the address (in any case) is all there is."""
    response = post(
        events_client, webhook_signer, [sg_event("bounce", "USER4@Example.com", type="bounce")]
    )
    assert response.status_code == 200
    assert status_of(database, "user4@example.com") is SubscriberStatus.BOUNCED
    with database.session() as session:
        row = session.scalars(select(Event)).one()
        assert row.campaign_id is None and row.delivery_id is None
        assert row.subscriber_id is not None


def test_ids_that_name_nothing_fall_back_to_the_address(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    ev = sg_event(
        "spamreport",
        "user5@example.com",
        campaign_id="999999",
        subscriber_id="99999999999999999999999",
        delivery_id="-4",
    )
    assert post(events_client, webhook_signer, [ev]).status_code == 200
    assert status_of(database, "user5@example.com") is SubscriberStatus.COMPLAINED


# --- soft bounces ------------------------------------------------------------------


def _blocked(
    email: str, days_ago: float, campaign: tuple[int, dict[str, tuple[int, int]]]
) -> dict[str, object]:
    when = int(time.time() - days_ago * 86400)
    return sg_event("bounce", email, type="blocked", timestamp=when, **args(campaign, email))


def test_soft_bounces_count_one_a_day_and_suppress_at_the_limit(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    email = "user0@example.com"
    # Ten blocks on one day are one point: a single soft bounce never suppresses.
    same_day = [_blocked(email, 0, campaign) for _ in range(10)]
    assert post(events_client, webhook_signer, same_day).status_code == 200
    assert status_of(database, email) is SubscriberStatus.ACTIVE
    for days_ago in (1, 2, 3):
        post(events_client, webhook_signer, [_blocked(email, days_ago, campaign)])
    with database.session() as session:
        record = subscribers.record_of(session, Settings(), email)
        assert record is not None and record.soft_bounce_score == 4
        sub = subscribers.find(session, email)
        assert sub is not None and sub.soft_bounce_score == 4
    assert status_of(database, email) is SubscriberStatus.ACTIVE
    post(events_client, webhook_signer, [_blocked(email, 4, campaign)])
    assert status_of(database, email) is SubscriberStatus.BOUNCED
    with database.session() as session:
        record = subscribers.record_of(session, Settings(), email)
    assert record is not None
    assert record.changes[-1].event_kind is EventKind.BLOCKED
    assert record.changes[-1].detail is not None and "5 soft bounces" in record.changes[-1].detail


def test_soft_bounce_points_older_than_the_window_no_longer_count(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    email = "user0@example.com"
    for days_ago in (31, 35, 40, 45, 50, 1, 2, 3, 4):
        post(events_client, webhook_signer, [_blocked(email, days_ago, campaign)])
    assert status_of(database, email) is SubscriberStatus.ACTIVE
    with database.session() as session:
        record = subscribers.record_of(session, Settings(), email)
    assert record is not None and record.soft_bounce_score == 4


def test_events_from_before_a_reconfirmation_change_nothing(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    email = "user2@example.com"
    with database.session() as session:
        sub = subscribers.find(session, email)
        assert sub is not None
        sub.confirmed_at = utcnow() - timedelta(days=1)  # they confirmed again yesterday
    old = int((utcnow() - timedelta(days=3)).timestamp())
    ev = sg_event("bounce", email, type="bounce", timestamp=old, **args(campaign, email))
    assert post(events_client, webhook_signer, [ev]).status_code == 200
    assert status_of(database, email) is SubscriberStatus.ACTIVE


# --- replays, duplicates, bad events -----------------------------------------------


def test_a_replay_changes_nothing_and_is_answered_2xx(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    email = "user1@example.com"
    batch = [sg_event("bounce", email, type="blocked", **args(campaign, email))]
    first = post(events_client, webhook_signer, batch)
    again = post(events_client, webhook_signer, batch)
    assert first.json()["stored"] == 1
    assert again.status_code == 200
    assert again.json() == {"received": 1, "stored": 0, "duplicates": 1, "refused": []}
    assert stored(database) == 1
    with database.session() as session:
        record = subscribers.record_of(session, Settings(), email)
    assert record is not None and record.soft_bounce_score == 1


def test_duplicates_within_one_batch_are_stored_once(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    ev = sg_event("spamreport", "user1@example.com")
    no_id = {"event": "open", "email": "user2@example.com", "timestamp": 1700000000}
    response = post(events_client, webhook_signer, [ev, ev, no_id, dict(no_id)])
    assert response.json() == {"received": 4, "stored": 2, "duplicates": 2, "refused": []}
    assert stored(database) == 2
    with database.session() as session:
        history = subscribers.record_of(session, Settings(), "user1@example.com")
    assert history is not None
    assert [c.new_status for c in history.changes].count(SubscriberStatus.COMPLAINED) == 1


def test_one_bad_event_does_not_lose_the_others(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    batch: list[object] = [
        {"event": ["bounce"], "email": 42, "timestamp": "yesterday", "sg_event_id": {"x": 1}},
        "not an event",
        {"event": "bounce", "type": "bounce", "email": "user1@example.com", "timestamp": 1e300},
        {"event": "spamreport", "email": "user2@example.com", "campaign_id": None, "x": "\u0000"},
        7,
        {"event": "unsubscribe", "email": "x" * 100_000 + "@example.com"},
    ]
    body = json.dumps(batch).encode()
    response = events_client.post(URL, content=body, headers=webhook_signer.headers(body))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["stored"] == 4
    assert [r["index"] for r in answer["refused"]] == [1, 4]
    assert status_of(database, "user1@example.com") is SubscriberStatus.BOUNCED
    assert status_of(database, "user2@example.com") is SubscriberStatus.COMPLAINED


def test_a_batch_of_1000_events_is_stored_whole(
    database: Database,
    events_client: httpx.Client,
    webhook_signer: Signer,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    names = ["processed", "delivered", "open", "click", "deferred"]
    batch = [
        sg_event(
            names[i % 5], f"user{i % 6}@example.com", **args(campaign, f"user{i % 6}@example.com")
        )
        for i in range(1000)
    ]
    response = post(events_client, webhook_signer, batch)
    assert response.status_code == 200
    assert response.json()["stored"] == 1000
    assert stored(database) == 1000
    with database.session() as session:
        kinds = {
            kind: n
            for kind, n in session.execute(select(Event.kind, func.count()).group_by(Event.kind))
        }
    assert kinds == {
        EventKind.OTHER: 200,
        EventKind.DELIVERED: 200,
        EventKind.OPENED: 200,
        EventKind.CLICKED: 200,
        EventKind.DEFERRED: 200,
    }


# --- who may post ------------------------------------------------------------------
# Refusals store nothing on any backend: checked on SQLite alone, to keep the suite quick.


@pytest.fixture
def one_db(sqlite_url: str) -> Iterator[Database]:
    db = Database(sqlite_url)
    yield db
    db.dispose()


@pytest.fixture
def signed_client(sqlite_url: str, webhook_signer: Signer) -> Iterator[httpx.Client]:
    settings = Settings(sendgrid_webhook_key=SecretStr(webhook_signer.public_key))
    with serve(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _refused(database: Database, response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert stored(database) == 0


def test_unsigned_posts_are_refused_and_nothing_is_stored(
    one_db: Database, signed_client: httpx.Client
) -> None:
    body = body_of([sg_event("spamreport", "a@example.com")])
    _refused(one_db, signed_client.post(URL, content=body), 401)


def test_a_tampered_body_is_refused(
    one_db: Database, signed_client: httpx.Client, webhook_signer: Signer
) -> None:
    body = body_of([sg_event("delivered", "a@example.com")])
    headers = webhook_signer.headers(body)
    tampered = body.replace(b"delivered", b"spamreport")
    _refused(one_db, signed_client.post(URL, content=tampered, headers=headers), 401)


def test_a_tampered_timestamp_is_refused(
    one_db: Database, signed_client: httpx.Client, webhook_signer: Signer
) -> None:
    body = body_of([sg_event("delivered", "a@example.com")])
    headers = webhook_signer.headers(body, timestamp="1700000000")
    headers[TIMESTAMP] = "1700000001"
    _refused(one_db, signed_client.post(URL, content=body, headers=headers), 401)


def test_a_signature_by_another_key_is_refused(
    one_db: Database, signed_client: httpx.Client
) -> None:
    body = body_of([sg_event("delivered", "a@example.com")])
    _refused(one_db, signed_client.post(URL, content=body, headers=Signer().headers(body)), 401)


@pytest.mark.parametrize("signature", ["not base64!", "", "AAAA", "A" * 5000, "TWFu\u00e9"])
def test_malformed_signatures_are_refused_not_errors(
    one_db: Database, signed_client: httpx.Client, webhook_signer: Signer, signature: str
) -> None:
    body = body_of([sg_event("delivered", "a@example.com")])
    headers = webhook_signer.headers(body)
    headers[SIGNATURE] = signature
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}
    _refused(one_db, signed_client.post(URL, content=body, headers=encoded), 401)


def test_a_body_that_is_not_utf8_is_refused(
    one_db: Database, signed_client: httpx.Client, webhook_signer: Signer
) -> None:
    body = b'[{"event": "spamreport", "email": "\xff@example.com"}]'
    response = signed_client.post(URL, content=body, headers=webhook_signer.headers(body))
    _refused(one_db, response, 401)


@pytest.mark.parametrize(
    "body",
    [b'[{"event": ', b'{"event": "bounce"}', b'"events"', b"", b"[" * 100_000, b"nan"],
)
def test_signed_bodies_that_are_not_a_list_of_events_are_400(
    one_db: Database, signed_client: httpx.Client, webhook_signer: Signer, body: bytes
) -> None:
    response = signed_client.post(URL, content=body, headers=webhook_signer.headers(body))
    _refused(one_db, response, 400)
    assert response.text.strip()


def test_oversized_bodies_are_413_however_they_are_sent(
    one_db: Database, signed_client: httpx.Client, webhook_signer: Signer
) -> None:
    big = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    headers = webhook_signer.headers(big)
    _refused(one_db, signed_client.post(URL, content=big, headers=headers), 413)

    def chunks() -> object:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    # No Content-Length (chunked): the size is counted as it is read.
    _refused(one_db, signed_client.post(URL, content=chunks(), headers=headers), 413)  # type: ignore[arg-type]


def test_without_a_key_the_hook_is_closed_and_says_so_in_the_log(
    one_db: Database, webhook_signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings()
    body = body_of([sg_event("spamreport", "a@example.com")])
    with caplog.at_level(logging.ERROR), serve(settings) as url:
        response = httpx.post(url + URL, content=body, headers=webhook_signer.headers(body))
    _refused(one_db, response, 503)
    assert any("DIGESTMAIL_SENDGRID_WEBHOOK_KEY" in r.getMessage() for r in caplog.records)


def test_the_subscribers_row_is_untouched_by_refused_posts(
    database: Database,
    events_client: httpx.Client,
    campaign: tuple[int, dict[str, tuple[int, int]]],
) -> None:
    body = body_of([sg_event("spamreport", "user1@example.com")])
    events_client.post(URL, content=body)
    with database.session() as session:
        assert (
            session.scalar(select(Subscriber.status).where(Subscriber.email == "user1@example.com"))
            is SubscriberStatus.ACTIVE
        )
