"""digestmail.inbound: every post is kept as it arrived, then read; no mail is ever lost.

The hostile messages of issue 7 are replayed through the real app over HTTP, with the
form encoding SendGrid uses (multipart/form-data, built by httpx), on both databases;
properties then throw generated posts and raw messages at the same path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.inbound import FIELDS, Action, parse_post
from digestmail.models import InboundMessage, Subscriber, SubscriberSource, SubscriberStatus
from tests.conftest import INBOUND_TOKEN
from tests.webhelpers import outbox_messages

TOKEN = INBOUND_TOKEN
CONTACT = "digest@example.org"
HOOK = "/hooks/sendgrid/inbound"
# Over HTTP, on a shared machine: a handful of examples per property and backend.
LIVE = settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def client(inbound_client: httpx.Client) -> httpx.Client:
    return inbound_client


@pytest.fixture
def db(inbound_settings: Settings) -> Iterator[Database]:
    database = Database(inbound_settings.database_url)
    yield database
    database.dispose()


def form(fields: dict[str, str | bytes]) -> tuple[str, bytes]:
    """A multipart/form-data post of these fields, encoded as httpx (and SendGrid) do."""
    if not fields:  # httpx sends no body at all for an empty form
        return "multipart/form-data; boundary=empty", b"--empty--\r\n"
    files = {
        name: (None, value if isinstance(value, bytes) else value.encode("utf-8"))
        for name, value in fields.items()
    }
    request = httpx.Request("POST", "http://x/", files=files)
    return request.headers["content-type"], request.read()


def post(client: httpx.Client, content_type: str, body: bytes) -> httpx.Response:
    return client.post(
        HOOK, params={"token": TOKEN}, content=body, headers={"Content-Type": content_type}
    )


def newest(db: Database) -> InboundMessage | None:
    with db.session() as s:
        return s.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()


def kept(client: httpx.Client, db: Database, fields: dict[str, str | bytes]) -> InboundMessage:
    """Post the fields; check the answer is 2xx and the post is stored exactly and handled."""
    content_type, body = form(fields)
    before = newest(db)
    response = post(client, content_type, body)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] is True
    row = newest(db)
    assert row is not None and (before is None or row.id > before.id)
    assert row.raw == body and row.content_type == content_type
    assert row.handled_at is not None, "stored, but reading or acting on it failed"
    return row


def parsed(sender: str, subject: str = "Hello", **more: str | bytes) -> dict[str, str | bytes]:
    """A post in SendGrid's "parsed" mode."""
    return {
        "from": sender,
        "to": CONTACT,
        "subject": subject,
        "text": "",
        "envelope": json.dumps({"to": [CONTACT], "from": "envelope@example.net"}),
        **more,
    }


def raw(message: bytes, **more: str | bytes) -> dict[str, str | bytes]:
    """A post in SendGrid's "raw" mode: the whole message in the ``email`` field."""
    return {"email": message, "to": CONTACT, **more}


# --- the crashes of issue 7, one by one -------------------------------------------------


@pytest.mark.parametrize("field", ["from", "to"])
def test_inbound_post_with_an_unclosed_angle_bracket_is_kept(
    client: httpx.Client, db: Database, field: str
) -> None:
    fields = parsed("pat@example.com", "subscribe")
    fields[field] = "<"
    row = kept(client, db, fields)
    assert row.subject == "subscribe"
    if field == "from":  # no address in From: the envelope's is used
        assert row.sender == "envelope@example.net"


def test_inbound_post_with_an_encoded_word_before_an_angle_bracket_is_kept(
    client: httpx.Client, db: Database
) -> None:
    row = kept(client, db, parsed("=?utf-8?q?Pat_Reader?= <", "=?utf-8?q?Gr=C3=BC=C3=9Fe?="))
    assert row.sender == "envelope@example.net" and row.subject == "Grüße"
    message = b"From: =?utf-8?q?Pat?= <\r\nTo: digest@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    assert kept(client, db, raw(message)).text == "body\r\n"


def test_inbound_post_with_an_unknown_charset_is_kept(client: httpx.Client, db: Database) -> None:
    charsets = json.dumps({"subject": "x-unknown-zz", "text": "UTF-8"})
    row = kept(client, db, parsed("pat@example.com", "Hello", charsets=charsets))
    assert row.subject == "Hello" and "x-unknown-zz" in (row.problem or "")
    message = (
        b"From: pat@example.com\r\nTo: digest@example.org\r\n"
        b"Subject: =?x-unknown-zz?q?caf=E9?=\r\n"
        b"Content-Type: text/plain; charset*=utf-8''%ff%ff\r\n\r\ncaf\xc3\xa9\r\n"
    )
    row = kept(client, db, raw(message))
    assert row.sender == "pat@example.com" and row.text == "café\r\n"


def test_inbound_post_with_charsets_naming_no_charset_is_kept(
    client: httpx.Client, db: Database
) -> None:
    row = kept(client, db, parsed("pat@example.com", "Hi", charsets=json.dumps({"subject": 5})))
    assert row.subject == "Hi"


def test_inbound_post_nested_thousands_deep_is_kept(client: httpx.Client, db: Database) -> None:
    deep = b"From: pat@example.com\r\nTo: digest@example.org\r\nSubject: deep\r\n"
    for level in range(1000):
        deep += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
    row = kept(client, db, raw(deep + b"\r\nhello\r\n"))
    assert row.sender == "pat@example.com" and row.subject == "deep"
    assert "cannot be read" in (row.problem or "")
    for field in ("charsets", "envelope"):
        row = kept(client, db, parsed("pat@example.com", **{field: "[" * 100_000}))
        assert f"{field}: not readable JSON" in (row.problem or "")


@pytest.mark.parametrize("where", ["subject", "text", "from", "raw"])
def test_inbound_post_with_nul_is_kept(client: httpx.Client, db: Database, where: str) -> None:
    if where == "raw":
        fields = raw(b"From: pat@example.com\x00\r\nSubject: a\x00b\r\n\r\nbo\x00dy\r\n")
    else:
        fields = parsed("pat@example.com", "subscribe")
        fields[where] = f"{fields[where]}\x00zero"
    row = kept(client, db, fields)
    assert b"\x00" in (row.raw or b"")  # the raw post keeps it; the reading shows U+FFFD
    assert "\x00" not in f"{row.sender}{row.subject}{row.text}"


def test_inbound_subscribe_from_a_198_character_address_asks_for_confirmation(
    client: httpx.Client, db: Database, inbound_settings: Settings
) -> None:
    address = "a" * 64 + "@" + "b" * 60 + "." + "c" * 60 + ".example.org"
    assert len(address) == 198
    row = kept(client, db, parsed(f"Long Name <{address}>", "subscribe"))
    assert row.action == Action.SUBSCRIBE and row.sender == address
    with db.session() as s:
        sub = s.scalars(select(Subscriber)).one()
    assert sub.email == address and sub.status is SubscriberStatus.PENDING
    assert sub.source is SubscriberSource.EMAIL and address in (sub.consent_text or "")
    [mail] = outbox_messages(Path(inbound_settings.outbox_dir))
    assert mail["To"] == address


def test_inbound_post_is_kept_when_handling_it_fails(
    client: httpx.Client, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure after storing (here the database refuses every update) loses nothing."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE ON inbound_messages "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE ON inbound_messages "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    content_type, body = form(parsed("pat@example.com", "subscribe"))
    with caplog.at_level(logging.ERROR, logger="digestmail.inbound"):
        response = post(client, content_type, body)
    assert response.status_code == 200 and response.json() == {"stored": True, "action": "none"}
    row = newest(db)
    assert row is not None and row.raw == body and row.handled_at is None
    [record] = [r for r in caplog.records if r.name == "digestmail.inbound"]
    assert "not handled" in record.getMessage() and record.exc_info is not None
    assert "pat@example.com" not in record.getMessage()


def test_inbound_email_never_rewrites_a_consent_record(
    client: httpx.Client, db: Database, inbound_settings: Settings
) -> None:
    """A forged "subscribe" mail for a pending or unsubscribed person changes nothing."""
    client.post("/subscribe", data={"email": "ann@example.com", "name": "Ann"})
    with db.session() as s:
        before = s.scalars(select(Subscriber)).one()
    row = kept(client, db, parsed("ann@example.com", "subscribe"))
    assert row.action == Action.SUBSCRIBE
    with db.session() as s:
        after = s.scalars(select(Subscriber)).one()
    record = ("name", "source", "consent_at", "consent_ip", "consent_by", "consent_text")
    assert {k: getattr(after, k) for k in record} == {k: getattr(before, k) for k in record}


# --- reading, without a server -------------------------------------------------------------


def test_parsed_fields_are_read_in_the_charset_named_for_each() -> None:
    content_type, body = form(
        {
            "from": "Zoë <zoe@example.com>",
            "to": f"Someone <{CONTACT}>, other@example.net",
            "subject": "caf\xe9".encode("latin-1"),
            "text": "Grüße".encode("utf-16"),
            "charsets": json.dumps({"subject": "iso-8859-1", "text": "utf-16"}),
        }
    )
    message = parse_post(content_type, body)
    assert message.sender == "zoe@example.com"
    assert message.recipients == (CONTACT, "other@example.net")
    assert (message.subject, message.text, message.problems) == ("café", "Grüße", ())


def test_a_post_cut_off_midway_keeps_what_was_read() -> None:
    content_type, body = form(parsed("pat@example.com", "subscribe"))
    message = parse_post(content_type, body[: body.index(b'name="text"')])
    assert message.sender == "pat@example.com" and message.subject == "subscribe"
    assert any("closing boundary" in p for p in message.problems)


# --- properties ----------------------------------------------------------------------------

_TRICKY = [
    "<",
    ">",
    "=?utf-8?q?x?= <",
    "=?x-unknown-zz?q?subscribe?=",
    "=?utf-8?b?!!!?=",
    "subscribe",
    "unsubscribe",
    CONTACT,
    "a" * 198 + "@example.com",
    "Pat <pat@example.com>",
    "\x00",
    '"\\',
]
_CHARSETS = ["utf-8", "UTF-8", "iso-8859-1", "x-unknown-zz", "rot13", "base64", "idna", "utf-16"]
_text = st.one_of(st.text(max_size=60), st.sampled_from(_TRICKY))
_bytes = st.one_of(
    st.binary(max_size=200),
    _text.map(lambda t: t.encode("utf-8", "surrogatepass")),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(_CHARSETS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_charsets = st.dictionaries(
    st.sampled_from(FIELDS), st.sampled_from(_CHARSETS) | _json, max_size=5
).map(json.dumps)
_envelope = st.fixed_dictionaries(
    {}, optional={"from": _text | _json, "to": st.lists(_text) | _json}
).map(json.dumps)
_field_value = st.one_of(_bytes, _text.map(str), _charsets, _envelope)
posts = st.dictionaries(
    st.sampled_from([*FIELDS, "attachment1", "spam_score", ""]), _field_value, max_size=9
)

_header_names = st.sampled_from(
    ["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted", "X-A"]
)
_content_types = st.sampled_from(
    [
        "text/plain",
        "text/plain; charset=x-unknown-zz",
        "text/plain; charset*=utf-8''%ff%ff",
        "text/plain; charset=utf-16",
        "text/html",
        "multipart/alternative",
        "message/rfc822",
    ]
)


@st.composite
def mime_messages(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = draw(st.lists(st.tuples(_header_names, _bytes), max_size=6))
    lines = [name.encode() + b": " + value for name, value in headers]
    if depth < 3 and draw(st.booleans()):
        boundary = b"b%d" % depth
        lines.append(b"Content-Type: multipart/mixed; boundary=" + boundary)
        parts = draw(st.lists(mime_messages(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
        body += b"--" + boundary + b"--\r\n" if draw(st.booleans()) else b""
    else:
        ctype = draw(_content_types).encode()
        lines.append(b"Content-Type: " + ctype)
        body = draw(_bytes)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@settings(max_examples=300)
@given(content_type=st.sampled_from(["multipart/form-data; boundary=x", "a/b", ""]), body=_bytes)
def test_property_reading_any_bytes_never_raises(content_type: str, body: bytes) -> None:
    message = parse_post(content_type, body)
    assert isinstance(message.subject, str) and isinstance(message.problems, tuple)


@settings(max_examples=200)
@given(fields=posts)
def test_property_reading_any_post_never_raises(fields: dict[str, str | bytes]) -> None:
    message = parse_post(*form(fields))
    assert all(isinstance(r, str) and r for r in message.recipients)


@settings(max_examples=200)
@given(message=mime_messages())
def test_property_reading_any_raw_message_never_raises(message: bytes) -> None:
    assert isinstance(parse_post(*form(raw(message))).text, str)


@LIVE
@given(fields=posts)
def test_property_every_post_is_kept_and_handled(
    client: httpx.Client, db: Database, fields: dict[str, str | bytes]
) -> None:
    kept(client, db, fields)


@LIVE
@given(message=mime_messages(), extra=posts)
def test_property_every_raw_message_is_kept_and_handled(
    client: httpx.Client, db: Database, message: bytes, extra: dict[str, str | bytes]
) -> None:
    extra.pop("subject", None)
    extra.pop("text", None)
    kept(client, db, {**extra, "email": message})


def test_erasure_removes_kept_mail_whose_sender_could_not_be_read(
    client: httpx.Client, db: Database, inbound_settings: Settings
) -> None:
    """GDPR erasure finds the person's mail by its raw post, not only by its sender."""
    from digestmail import subscribers

    message = (
        b"From: <\r\nTo: digest@example.org\r\nSubject: please remove me\r\n\r\n"
        b"I am Gone.Reader@Example.com, forget me.\r\n"
    )
    unread = kept(client, db, raw(message))
    assert unread.sender != "gone.reader@example.com"
    other = kept(client, db, parsed("stay@example.com", "Hello"))
    with db.session() as session:
        subscribers.erase(session, inbound_settings, "gone.reader@example.com")
    with db.session() as session:
        left = set(session.scalars(select(InboundMessage.id)))
    assert unread.id not in left and other.id in left
