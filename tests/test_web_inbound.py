"""Subscribe and unsubscribe by email through SendGrid Inbound Parse, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import InboundMessage, Subscriber, SubscriberSource, SubscriberStatus
from tests.conftest import INBOUND_TOKEN
from tests.liveserver import serve
from tests.webhelpers import link_in, outbox_messages

TOKEN = INBOUND_TOKEN


@pytest.fixture
def client(inbound_client: httpx.Client) -> httpx.Client:
    return inbound_client


def _post(
    client: httpx.Client,
    *,
    sender: str,
    subject: str,
    text: str = "",
    token: str | None = TOKEN,
    to: str = "digest@example.org",
    attachment: bytes | None = None,
) -> httpx.Response:
    data = {
        "from": sender,
        "to": to,
        "subject": subject,
        "text": text,
        "headers": f"From: {sender}\nTo: {to}\nSubject: {subject}\n",
        "envelope": json.dumps({"to": [to], "from": sender}),
        "charsets": json.dumps(
            {"to": "UTF-8", "subject": "UTF-8", "text": "UTF-8", "from": "UTF-8"}
        ),
    }
    files = (
        {"attachment1": ("big.bin", attachment, "application/octet-stream")} if attachment else {}
    )
    params = {"token": token} if token is not None else {}
    # httpx sends multipart/form-data only with files; force it for parity with SendGrid.
    files = files or {"_": ("", b"", "application/octet-stream")}
    return client.post("/hooks/sendgrid/inbound", params=params, data=data, files=files)


def _rows(settings: Settings) -> tuple[list[InboundMessage], list[Subscriber]]:
    db = Database(settings.database_url)
    with db.session() as s:
        result = (
            list(s.scalars(select(InboundMessage).order_by(InboundMessage.id))),
            list(s.scalars(select(Subscriber))),
        )
    db.dispose()
    return result


def test_wrong_or_missing_token_stores_nothing(
    client: httpx.Client, inbound_settings: Settings
) -> None:
    assert _post(client, sender="a@example.com", subject="subscribe", token=None).status_code == 401
    assert (
        _post(client, sender="a@example.com", subject="subscribe", token="wrong").status_code == 403
    )
    assert _rows(inbound_settings) == ([], [])
    assert not list(Path(inbound_settings.outbox_dir).glob("*.eml"))


def test_hook_is_closed_without_a_configured_token(settings: Settings) -> None:
    with serve(settings) as url, httpx.Client(base_url=url) as c:
        assert _post(c, sender="a@example.com", subject="subscribe", token="").status_code == 401
        assert _post(c, sender="a@example.com", subject="subscribe", token="x").status_code == 403


def test_subscribe_by_email_needs_confirmation(
    client: httpx.Client, inbound_settings: Settings
) -> None:
    r = _post(client, sender="Pat Reader <Pat@Example.com>", subject="Subscribe")
    assert r.status_code == 200 and r.json()["action"] == "subscribe"
    messages, subs = _rows(inbound_settings)
    assert [m.action for m in messages] == ["subscribe"] and messages[0].handled_at
    [sub] = subs
    assert sub.email == "Pat@example.com" and sub.status is SubscriberStatus.PENDING
    assert sub.source is SubscriberSource.EMAIL and "subject 'Subscribe'" in (
        sub.consent_text or ""
    )
    [mail] = outbox_messages(Path(inbound_settings.outbox_dir))
    assert mail["To"] == "Pat@example.com"
    assert client.get(link_in(mail).removeprefix(inbound_settings.base_url)).status_code == 200
    assert _rows(inbound_settings)[1][0].status is SubscriberStatus.ACTIVE


def test_first_line_counts_and_unsubscribe_sends_a_link(
    client: httpx.Client, inbound_settings: Settings
) -> None:
    _post(client, sender="sam@example.com", subject="Hello", text="\n  subscribe me please\nthanks")
    [mail] = outbox_messages(Path(inbound_settings.outbox_dir))
    client.get(link_in(mail).removeprefix(inbound_settings.base_url))
    assert _rows(inbound_settings)[1][0].status is SubscriberStatus.ACTIVE

    r = _post(
        client, sender="sam@example.com", subject="Re: Policy Digest", text="Unsubscribe\n> quoted"
    )
    assert r.json()["action"] == "unsubscribe"
    # From can be forged: nothing changes until the link is used.
    assert _rows(inbound_settings)[1][0].status is SubscriberStatus.ACTIVE
    mail = outbox_messages(Path(inbound_settings.outbox_dir))[-1]
    assert "unsubscribe" in mail["Subject"].lower()
    link = link_in(mail)
    assert "/unsubscribe/" in link
    path = link.removeprefix(inbound_settings.base_url)
    assert client.get(path).status_code == 200
    assert _rows(inbound_settings)[1][0].status is SubscriberStatus.ACTIVE
    assert client.post(path).status_code == 200
    assert _rows(inbound_settings)[1][0].status is SubscriberStatus.UNSUBSCRIBED


def test_everything_else_is_kept_for_staff(
    client: httpx.Client, inbound_settings: Settings
) -> None:
    big = b"x" * (2 * 1024 * 1024)  # beyond python-multipart's default 1 MB part limit
    r = _post(
        client,
        sender="press@example.net",
        subject="Interview request",
        text="Hi,\nsubscribe? no",
        attachment=big,
    )
    assert r.status_code == 200 and r.json() == {"stored": True, "action": "none"}
    _post(client, sender="x@example.net", subject="subscribe", to="someone-else@example.org")
    _post(client, sender="not an address", subject="subscribe")
    # Valid, but needs SMTPUTF8, which no transport here speaks: kept for staff to answer.
    _post(client, sender="José <josé@example.com>", subject="subscribe")
    messages, subs = _rows(inbound_settings)
    assert [m.action for m in messages] == ["none", "none", "none", "none"]
    assert messages[3].sender == "josé@example.com"
    assert messages[0].subject == "Interview request" and messages[0].text.startswith("Hi,")  # type: ignore[union-attr]
    assert subs == []
    assert not list(Path(inbound_settings.outbox_dir).glob("*.eml"))


def test_a_request_that_is_not_a_message_is_refused_and_not_stored(
    client: httpx.Client, inbound_settings: Settings
) -> None:
    hook = f"/hooks/sendgrid/inbound?token={TOKEN}"
    assert client.post(hook, json={"from": "a@example.com"}).status_code == 415
    assert (
        client.post(hook, content=b"", headers={"Content-Type": "multipart/form-data"}).status_code
        == 400
    )
    assert _rows(inbound_settings) == ([], [])
