"""Bounce messages: VERP tokens, reading real bounce formats, and both ways they arrive
(SendGrid Inbound Parse over HTTP, and a real IMAP mailbox served by Dovecot)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select

from digestmail import bounces, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import ChangeCause, EventKind, InboundMessage, SubscriberStatus
from tests.campaign_helpers import deliveries, sent_campaign
from tests.conftest import FIXTURES, INBOUND_TOKEN
from tests.imapserver import ImapServer
from tests.liveserver import serve

BOUNCES = FIXTURES / "bounces"
BOUNCE_ADDRESS = "bounces@bounce.example.org"

# Fixture -> what it reports about its recipient.
KINDS = {
    "dsn-hard.eml": EventKind.BOUNCED,
    "dsn-expired.eml": EventKind.BLOCKED,
    "dsn-delayed.eml": EventKind.DEFERRED,
    "qmail.eml": EventKind.BOUNCED,
    "exim.eml": EventKind.BOUNCED,
}
# ... and what that does to an active subscriber.
STATUS_AFTER = {
    EventKind.BOUNCED: SubscriberStatus.BOUNCED,
    EventKind.BLOCKED: SubscriberStatus.ACTIVE,  # one soft bounce never suppresses
    EventKind.DEFERRED: SubscriberStatus.ACTIVE,
}


def _settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"bounce_address": BOUNCE_ADDRESS})


def sample(name: str, return_path: str, rcpt: str) -> bytes:
    text = (BOUNCES / name).read_text(encoding="utf-8")
    return text.replace("{{RETURN_PATH}}", return_path).replace("{{RCPT}}", rcpt).encode()


# --- VERP ---------------------------------------------------------------------------


def test_verp_tokens_name_their_delivery_and_survive_lower_casing() -> None:
    s = Settings(bounce_address=BOUNCE_ADDRESS)
    path = bounces.return_path(s, 123456789)
    assert path is not None
    local, _, domain = path.partition("@")
    assert domain == "bounce.example.org" and local.startswith("bounces+123456789-")
    assert len(local) <= 64 and local == local.lower()
    for form in (path, path.upper(), f"<{path}>", path.lower()):
        assert bounces.delivery_of(s, form) == 123456789
    assert bounces.return_path(s, None) == BOUNCE_ADDRESS
    assert bounces.return_path(Settings(), 5) is None


@pytest.mark.parametrize(
    "address",
    [
        "bounces+123456789-aaaaaaaaaaaaaaaa@bounce.example.org",  # forged mac
        "bounces+123456788-{mac}@bounce.example.org",  # another delivery, this mac
        "bounces+123456789-{mac}@elsewhere.example.org",
        "other+123456789-{mac}@bounce.example.org",
        "bounces@bounce.example.org",
        "bounces+0-{mac}@bounce.example.org",
        "bounces+99999999999999999999-{mac}@bounce.example.org",
        "",
    ],
)
def test_verp_tokens_cannot_be_forged_or_moved(address: str) -> None:
    s = Settings(bounce_address=BOUNCE_ADDRESS)
    good = bounces.return_path(s, 123456789)
    assert good is not None
    mac = good.split("-", 1)[1].split("@")[0]
    assert bounces.delivery_of(s, address.format(mac=mac)) is None


def test_another_secret_key_does_not_accept_the_token() -> None:
    path = bounces.return_path(Settings(bounce_address=BOUNCE_ADDRESS), 42)
    assert path is not None
    other = Settings(bounce_address=BOUNCE_ADDRESS, secret_key=SecretStr("another-secret-key-0123"))
    assert bounces.delivery_of(other, path) is None


# --- reading bounce formats ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_format_names_the_failed_address_its_kind_and_its_delivery(name: str) -> None:
    s = Settings(bounce_address=BOUNCE_ADDRESS)
    path = bounces.return_path(s, 77)
    assert path is not None
    raw = sample(name, path, "gone@example.net")
    assert bounces.looks_like_bounce(s, [], raw)
    read = bounces.read_bounce(s, raw)
    assert read.delivery_id == 77
    assert [(e.email, e.kind) for e in read.events] == [("gone@example.net", KINDS[name])]
    if name.startswith("dsn-"):
        assert read.events[0].reason is not None and read.events[0].reason[0] in "45"
    # The same message read twice gives the same event ids: stored once.
    assert [e.event_id for e in bounces.read_bounce(s, raw).events] == [
        e.event_id for e in read.events
    ]


def test_an_auto_reply_to_the_bounce_address_is_no_bounce() -> None:
    s = Settings(bounce_address=BOUNCE_ADDRESS)
    raw = sample("auto-reply.eml", BOUNCE_ADDRESS, "reader@example.net")
    assert bounces.read_bounce(s, raw).events == []


_fixture_bytes = st.sampled_from(sorted(KINDS)).map(
    lambda n: sample(n, "bounces+5-abcdefghijklmnop@bounce.example.org", "x@example.net")
)


@hsettings(max_examples=150)
@given(
    raw=st.one_of(
        st.binary(max_size=4000),
        st.tuples(_fixture_bytes, st.integers(0, 3000), st.binary(max_size=200)).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),
    ),
    envelope=st.lists(st.text(max_size=80), max_size=3),
)
def test_reading_any_bytes_never_raises_and_every_failure_becomes_an_event(
    raw: bytes, envelope: list[str]
) -> None:
    s = Settings(bounce_address=BOUNCE_ADDRESS)
    read = bounces.read_bounce(s, raw, envelope_recipients=envelope)
    assert len({e.event_id for e in read.events}) == len(read.events)
    for event in read.events:
        assert event.kind in (EventKind.BOUNCED, EventKind.BLOCKED, EventKind.DEFERRED)
        assert len(event.event_id) <= 200
    bounces.looks_like_bounce(s, envelope, raw)


@hsettings(max_examples=200)
@given(st.text(max_size=200))
def test_any_address_is_a_delivery_or_none(address: str) -> None:
    s = Settings(bounce_address=BOUNCE_ADDRESS)
    found = bounces.delivery_of(s, address)
    assert found is None or bounces.delivery_of(s, bounces.return_path(s, found) or "") == found


# --- by Inbound Parse ---------------------------------------------------------------


def _raw_post(client: httpx.Client, raw: bytes, envelope_to: str) -> httpx.Response:
    """An Inbound Parse post in raw mode ("POST the raw, full MIME message")."""
    data = {
        "envelope": json.dumps({"to": [envelope_to], "from": ""}),
        "charsets": json.dumps({"to": "UTF-8"}),
        "to": envelope_to,
    }
    files = {"email": ("", raw, "text/plain")}
    return client.post(
        "/hooks/sendgrid/inbound", params={"token": INBOUND_TOKEN}, data=data, files=files
    )


@pytest.mark.parametrize("name", sorted(KINDS))
def test_bounces_through_the_inbound_parse_hook(
    database: Database, inbound_settings: Settings, name: str
) -> None:
    s = _settings(inbound_settings)
    cid = sent_campaign(database, s, 3)
    delivery_id, _ = deliveries(database, cid)["user1@example.com"]
    path = bounces.return_path(s, delivery_id)
    assert path is not None
    # The bounce names a forwarded-to address; the token still finds the subscriber.
    raw = sample(name, path, "forwarded@elsewhere.example")
    with serve(s) as url, httpx.Client(base_url=url, timeout=60) as client:
        response = _raw_post(client, raw, path)
        again = _raw_post(client, raw, path)  # SendGrid retried: nothing new
    assert response.status_code == 200 and response.json()["action"] == "bounce"
    assert again.status_code == 200
    kind = KINDS[name]
    with database.session() as session:
        sub = subscribers.find(session, "user1@example.com")
        assert sub is not None and sub.status is STATUS_AFTER[kind]
        record = subscribers.record_of(session, s, "user1@example.com")
        assert record is not None
        if kind is not EventKind.DEFERRED:
            assert [(e.kind, e.source, e.campaign_id) for e in record.events] == [
                (kind, "bounce_message", cid)
            ]
        if kind is EventKind.BOUNCED:
            assert record.changes[-1].cause is ChangeCause.EVENT
        if kind is EventKind.BLOCKED:
            assert record.soft_bounce_score == 1
        rows = session.scalars(select(InboundMessage)).all()
        assert [r.action for r in rows] == ["bounce", "bounce"]
        assert all(r.raw and raw in r.raw for r in rows)
        other = subscribers.find(session, "user2@example.com")
        assert other is not None and other.status is SubscriberStatus.ACTIVE


def test_a_bounce_of_a_confirmation_to_the_contact_address_finds_the_address(
    database: Database, inbound_client: httpx.Client, inbound_settings: Settings
) -> None:
    """No bounce address configured: bounces come back to the sender, the contact address,
    and are read by the same hook; without a token the address itself is looked up."""
    with database.session() as session:
        request = subscribers.request_subscription(
            session,
            subscribers.normalize("typo@example.net"),
            name=None,
            source=subscribers.SubscriberSource.FORM,
            consent_text="t",
        )
    raw = sample("dsn-hard.eml", inbound_settings.contact_address, "typo@example.net")
    response = _raw_post(inbound_client, raw, inbound_settings.contact_address)
    assert response.json()["action"] == "bounce"
    with database.session() as session:
        sub = subscribers.find(session, "typo@example.net")
        assert sub is not None and sub.id == request.subscriber_id
        assert sub.status is SubscriberStatus.BOUNCED


# --- by IMAP ------------------------------------------------------------------------


def test_bounces_fetched_from_a_real_imap_mailbox(
    database: Database, settings: Settings, imap_server: ImapServer
) -> None:
    s = _settings(settings).model_copy(update={"bounce_imap_url": SecretStr(imap_server.url())})
    cid = sent_campaign(database, s, 6)
    rows = deliveries(database, cid)
    names = sorted(KINDS)
    expected: dict[str, SubscriberStatus] = {}
    for i, name in enumerate(names):
        email = f"user{i}@example.com"
        path = bounces.return_path(s, rows[email][0])
        assert path is not None
        imap_server.deliver(sample(name, path, email), f"{i}.bounce")
        expected[email] = STATUS_AFTER[KINDS[name]]
    imap_server.deliver(sample("auto-reply.eml", BOUNCE_ADDRESS, "user5@example.com"), "9.reply")
    report = bounces.fetch_bounces(database, s)
    assert report.read == len(names) + 1 and report.failed == 0
    assert report.bounces == len(names)
    # Moved, never deleted: everything is in Processed, byte for byte.
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages("Processed")) == len(names) + 1
    with database.session() as session:
        for email, status in expected.items():
            sub = subscribers.find(session, email)
            assert sub is not None and sub.status is status, email
        stored = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert len(stored) == len(names) + 1
        assert sorted(r.action for r in stored) == ["bounce"] * len(names) + ["none"]
    # Fetching again finds nothing new.
    assert bounces.fetch_bounces(database, s).read == 0


def test_a_mailbox_that_cannot_be_read_is_an_error_that_moves_nothing(
    database: Database, settings: Settings, imap_server: ImapServer
) -> None:
    imap_server.deliver(sample("qmail.eml", BOUNCE_ADDRESS, "a@example.net"), "1.bounce")
    wrong = imap_server.url().replace("imap-test-password", "wrong")
    s = settings.model_copy(update={"bounce_imap_url": SecretStr(wrong)})
    with pytest.raises(bounces.FetchError) as raised:
        bounces.fetch_bounces(database, s)
    assert "wrong" not in str(raised.value) and "imap-test-password" not in str(raised.value)
    assert len(imap_server.messages("INBOX")) == 1
