"""The public flow through the real app over HTTP: subscribe, confirm, unsubscribe."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from pydantic import SecretStr
from sqlalchemy import func, select

from digestmail import subscribers, tokens
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Subscriber, SubscriberSource, SubscriberStatus
from digestmail.web.pages import consent_wording
from tests.liveserver import serve
from tests.webhelpers import link_in, wait_for_messages


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


@pytest.fixture
def client(live: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live, follow_redirects=False, timeout=30) as c:
        yield c


def _subscriber(settings: Settings, key: str) -> Subscriber | None:
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            return s.scalars(select(Subscriber).where(Subscriber.email_key == key)).one_or_none()
    finally:
        db.dispose()


def test_subscribe_confirm_unsubscribe(client: httpx.Client, settings: Settings) -> None:
    form = client.get("/subscribe")
    assert form.status_code == 200
    assert 'for="email"' in form.text and 'name="website"' in form.text
    assert consent_wording(settings) in form.text

    r = client.post("/subscribe", data={"email": "Jane.Doe@Example.ORG", "name": " Jane  Doe "})
    assert r.status_code == 200
    assert "check your inbox" in r.text.lower()
    sub = _subscriber(settings, "jane.doe@example.org")
    assert sub is not None
    assert sub.email == "Jane.Doe@example.org"  # as typed, domain normalised
    assert sub.name == "Jane Doe"
    assert sub.status is SubscriberStatus.PENDING
    assert sub.source is SubscriberSource.FORM
    assert sub.consent_ip == "127.0.0.1"
    assert sub.consent_text == consent_wording(settings)
    assert sub.consent_at is not None

    [message] = wait_for_messages(Path(settings.outbox_dir), 1)
    assert message["To"] == "Jane.Doe@example.org"
    assert "confirm" in message["Subject"].lower()
    assert "List-Unsubscribe" not in message  # one-off mail, not the list
    html = message.get_body(preferencelist=("html",))
    assert html is not None and 'lang="en"' in html.get_content()
    link = link_in(message)
    assert link.startswith(f"{settings.base_url}/confirm/")

    confirm_path = link.removeprefix(settings.base_url)
    r = client.get(confirm_path)
    assert r.status_code == 200 and "You are subscribed" in r.text
    sub = _subscriber(settings, "jane.doe@example.org")
    assert sub is not None and sub.status is SubscriberStatus.ACTIVE and sub.confirmed_at
    assert "already subscribed" in client.get(confirm_path).text  # idempotent

    unsub_path = f"/unsubscribe/{tokens.make_token(settings, tokens.Purpose.UNSUBSCRIBE, sub.id)}"
    page = client.get(unsub_path)
    assert page.status_code == 200
    assert '<button type="submit"' in page.text and f'action="{unsub_path}"' in page.text
    sub = _subscriber(settings, "jane.doe@example.org")
    assert sub is not None and sub.status is SubscriberStatus.ACTIVE  # a GET changes nothing

    r = client.post(unsub_path, data={})
    assert r.status_code == 200
    assert 'href="/subscribe"' in r.text  # the resubscribe link
    sub = _subscriber(settings, "jane.doe@example.org")
    assert sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED
    assert sub.unsubscribed_at is not None

    # An old confirmation link must not undo the unsubscribe.
    r = client.get(confirm_path)
    assert r.status_code == 409
    assert _subscriber(settings, "jane.doe@example.org").status is SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]

    # Re-subscribing goes through double opt-in again.
    r = client.post("/subscribe", data={"email": "jane.doe@example.org"})
    assert r.status_code == 200
    assert _subscriber(settings, "jane.doe@example.org").status is SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    newest = wait_for_messages(Path(settings.outbox_dir), 2)[-1]
    assert client.get(link_in(newest).removeprefix(settings.base_url)).status_code == 200
    assert _subscriber(settings, "jane.doe@example.org").status is SubscriberStatus.ACTIVE  # type: ignore[union-attr]


def test_one_click_unsubscribe(client: httpx.Client, settings: Settings) -> None:
    client.post("/subscribe", data={"email": "reader@example.com"})
    [message] = wait_for_messages(Path(settings.outbox_dir), 1)
    client.get(link_in(message).removeprefix(settings.base_url))
    sub = _subscriber(settings, "reader@example.com")
    assert sub is not None and sub.status is SubscriberStatus.ACTIVE
    token = tokens.make_token(settings, tokens.Purpose.UNSUBSCRIBE, sub.id)
    # RFC 8058: a fresh client, no cookies, a form body, no CSRF token.
    with httpx.Client(base_url=client.base_url, follow_redirects=False) as bare:
        r = bare.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 200
    assert "set-cookie" not in r.headers
    assert _subscriber(settings, "reader@example.com").status is SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    # Repeating it is harmless.
    assert (
        client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 200
    )


def _in_state(settings: Settings, email: str, state: SubscriberStatus) -> None:
    """A subscriber in ``state``, made directly (the rate limit is for the test's requests)."""
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            request = subscribers.request_subscription(
                s,
                subscribers.normalize(email),
                name=None,
                source=SubscriberSource.FORM,
                consent_text="t",
            )
        if state is not SubscriberStatus.PENDING:
            with db.session() as s:
                subscribers.confirm(s, settings, request.subscriber_id)
        if state is SubscriberStatus.UNSUBSCRIBED:
            with db.session() as s:
                subscribers.unsubscribe(s, request.subscriber_id)
        if state is SubscriberStatus.COMPLAINED:
            with db.session() as s:
                subscribers.suppress(s, request.subscriber_id, state)
    finally:
        db.dispose()


def test_same_answer_whatever_the_address_state(client: httpx.Client, settings: Settings) -> None:
    states = {
        "new@example.com": None,
        "pending@example.com": SubscriberStatus.PENDING,
        "active@example.com": SubscriberStatus.ACTIVE,
        "left@example.com": SubscriberStatus.UNSUBSCRIBED,
        "spam@example.com": SubscriberStatus.COMPLAINED,
    }
    for email, state in states.items():
        if state is not None:
            _in_state(settings, email, state)
    answers = {email: client.post("/subscribe", data={"email": email}) for email in states}
    assert {r.status_code for r in answers.values()} == {200}
    pages = {r.text.replace(email, "ADDRESS") for email, r in answers.items()}
    assert len(pages) == 1, "the page must not say which addresses are known"
    assert all(email in r.text for email, r in answers.items())  # the address is echoed
    # Behind the same answer: everybody not already active gets a confirmation, except
    # who marked our mail as spam: they are never mailed again (only staff add them back).
    mailed = wait_for_messages(Path(settings.outbox_dir), 4, timeout=3)
    assert sorted(m["To"] for m in mailed) == [
        "left@example.com",
        "new@example.com",
        "pending@example.com",
    ]
    # Case-insensitively unique: still one row.
    client.post("/subscribe", data={"email": "NEW@EXAMPLE.COM"})
    db = Database(settings.database_url)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 5
        spam = subscribers.find(s, "spam@example.com")
        assert spam is not None and spam.status is SubscriberStatus.COMPLAINED
    db.dispose()


class _HangingSMTPServer:
    """Accepts a connection and says nothing until released: an SMTP server that hangs.

    Released, it greets with a refusal that quotes the recipient, as real servers'
    replies often do, so the test can check what reaches the log.
    """

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connected = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.listener.accept()
        self.connected.set()
        with conn:
            self.release.wait(30)
            conn.sendall(self.greeting)
            conn.recv(1024)  # the client's QUIT, or its closing the connection

    def close(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.listener.close()


def test_the_answer_does_not_wait_for_the_transport(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Only new, pending and unsubscribed addresses are mailed: if the answer waited for
    the transport, its timing would tell an active subscriber from the rest."""
    email = "Slow.Reader@example.com"
    hanging = _HangingSMTPServer(f"554 5.7.1 <{email}> not today\r\n".encode())
    smtp = settings.model_copy(
        update={
            "transport": "smtp",
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{hanging.port}"),
            "smtp_timeout": 20,
        }
    )
    try:
        with serve(smtp) as url, httpx.Client(base_url=url, timeout=5) as c:
            # Answered (within the client's 5 s) while the SMTP server has not even said
            # hello: sending inside the request would hang here until it did.
            r = c.post("/subscribe", data={"email": email})
            assert r.status_code == 200 and "check your inbox" in r.text.lower()
            sub = _subscriber(smtp, "slow.reader@example.com")
            assert sub is not None and sub.status is SubscriberStatus.PENDING  # on record
            assert hanging.connected.wait(10)  # the confirmation is on its way
            hanging.release.set()
            deadline = time.monotonic() + 10
            while not any(r.levelno >= logging.ERROR for r in caplog.records):
                assert time.monotonic() < deadline, "the failed confirmation was not logged"
                time.sleep(0.02)
    finally:
        hanging.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"subscriber {sub.id}" in m for m in errors), errors
    assert not any(email.lower() in m.lower() for m in errors), "addresses stay out of logs"


def _expired_confirm_token(settings: Settings, subscriber_id: int) -> str:
    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 24 * 3600

    serializer = tokens._serializer(settings, tokens.Purpose.CONFIRM)
    serializer.signer = EightDaysAgo
    return str(serializer.dumps(subscriber_id))


def test_tampered_and_expired_links_change_nothing(
    client: httpx.Client, settings: Settings
) -> None:
    client.post("/subscribe", data={"email": "slow@example.com"})
    sub = _subscriber(settings, "slow@example.com")
    assert sub is not None
    good = tokens.make_token(settings, tokens.Purpose.CONFIRM, sub.id)

    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    r = client.get(f"/confirm/{tampered}")
    assert r.status_code == 400 and "not valid" in r.text

    other_id = tokens.make_token(settings, tokens.Purpose.CONFIRM, sub.id + 1000)
    assert client.get(f"/confirm/{other_id}").status_code == 404

    # An unsubscribe token is no confirmation token (purpose salts differ).
    unsub = tokens.make_token(settings, tokens.Purpose.UNSUBSCRIBE, sub.id)
    assert client.get(f"/confirm/{unsub}").status_code == 400

    expired = _expired_confirm_token(settings, sub.id)
    r = client.get(f"/confirm/{expired}")
    assert r.status_code == 410 and "expired" in r.text
    assert _subscriber(settings, "slow@example.com").status is SubscriberStatus.PENDING  # type: ignore[union-attr]

    assert client.get(f"/unsubscribe/{tampered}").status_code == 400
    assert client.post(f"/unsubscribe/{tampered}").status_code == 400


@pytest.mark.parametrize(
    "address",
    ["", "not-an-address", "jane@", "@example.com", "jane@example..com", "a b@example.com"],
)
def test_invalid_addresses_are_refused_kindly(
    client: httpx.Client, settings: Settings, address: str
) -> None:
    r = client.post("/subscribe", data={"email": address, "name": "Kept"})
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text and 'role="alert"' in r.text
    assert 'value="Kept"' in r.text  # what they typed is not lost
    assert not Path(settings.outbox_dir).exists() or not list(Path(settings.outbox_dir).iterdir())


def test_addresses_the_transports_cannot_mail_are_refused_at_once(
    client: httpx.Client, settings: Settings
) -> None:
    r = client.post("/subscribe", data={"email": "josé@example.com", "name": "José"})
    assert r.status_code == 422 and 'role="alert"' in r.text
    assert "characters in the part before the @" in r.text
    assert "please use another address" in r.text
    assert 'value="José"' in r.text
    assert _subscriber(settings, "josé@example.com") is None
    # An internationalised domain is fine: stored and mailed as punycode.
    r = client.post("/subscribe", data={"email": "Ines@Bücher.de"})
    assert r.status_code == 200
    sub = _subscriber(settings, "ines@xn--bcher-kva.de")
    assert sub is not None and sub.email == "Ines@xn--bcher-kva.de"
    [mail] = wait_for_messages(Path(settings.outbox_dir), 1)
    assert mail["To"] == "Ines@xn--bcher-kva.de"


def test_honeypot_looks_fine_but_does_nothing(client: httpx.Client, settings: Settings) -> None:
    r = client.post(
        "/subscribe", data={"email": "bot@example.com", "website": "http://spam.example"}
    )
    assert r.status_code == 200 and "check your inbox" in r.text.lower()
    assert _subscriber(settings, "bot@example.com") is None
    assert not list(Path(settings.outbox_dir).glob("*.eml"))


def test_rate_limit_per_ip(client: httpx.Client, settings: Settings) -> None:
    assert settings.subscribe_limit == "5/minute"
    codes = [
        client.post("/subscribe", data={"email": f"r{i}@example.com"}).status_code for i in range(6)
    ]
    assert codes == [200] * 5 + [429]
    r = client.post("/subscribe", data={"email": "r9@example.com"})
    assert r.status_code == 429 and "try again later" in r.text.lower()
    assert r.headers["retry-after"]
    assert _subscriber(settings, "r9@example.com") is None
    # Another client address (through the trusted local proxy) has its own budget.
    other = client.post(
        "/subscribe", data={"email": "r9@example.com"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert other.status_code == 200
    sub = _subscriber(settings, "r9@example.com")
    assert sub is not None and sub.consent_ip == "203.0.113.9"


def test_cross_site_post_needs_no_token(client: httpx.Client, settings: Settings) -> None:
    r = client.post(
        "/subscribe",
        data={"email": "embed@example.com"},
        headers={
            "Origin": "https://www.institute.example",
            "Referer": "https://www.institute.example/",
        },
    )
    assert r.status_code == 200
    assert _subscriber(settings, "embed@example.com") is not None


def test_healthz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_form_post_for_an_unsubscribed_person_changes_nothing_until_confirmed(
    client: httpx.Client, settings: Settings
) -> None:
    client.post("/subscribe", data={"email": "uma@example.com", "name": "Uma"})
    [first] = wait_for_messages(Path(settings.outbox_dir), 1)
    client.get(link_in(first).removeprefix(settings.base_url))
    sub = _subscriber(settings, "uma@example.com")
    assert sub is not None
    client.post(f"/unsubscribe/{tokens.make_token(settings, tokens.Purpose.UNSUBSCRIBE, sub.id)}")
    before = _subscriber(settings, "uma@example.com")
    # Somebody, from elsewhere, types Uma's address with another name.
    r = client.post(
        "/subscribe",
        data={"email": "UMA@example.com", "name": "Not Uma"},
        headers={"X-Forwarded-For": "203.0.113.50"},
    )
    assert r.status_code == 200
    after = _subscriber(settings, "uma@example.com")
    assert before is not None and after is not None
    record = ("status", "name", "source", "consent_at", "consent_ip", "consent_by", "consent_text")
    assert {k: getattr(after, k) for k in record} == {k: getattr(before, k) for k in record}
    # Only following that request's link applies it: this is what was asked, and when.
    newest = wait_for_messages(Path(settings.outbox_dir), 2)[-1]
    assert client.get(link_in(newest).removeprefix(settings.base_url)).status_code == 200
    confirmed = _subscriber(settings, "uma@example.com")
    assert confirmed is not None and confirmed.status is SubscriberStatus.ACTIVE
    assert (confirmed.name, confirmed.consent_ip) == ("Not Uma", "203.0.113.50")
    assert confirmed.consent_at is not None and before.consent_at is not None
    assert confirmed.consent_at > before.consent_at


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"email=caf%E9%40example.com&name=x", "application/x-www-form-urlencoded"),
        (b"email=ann%40example.com&name=Jos%E9", "application/x-www-form-urlencoded"),
        (
            b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nann@example.com\r\n'
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nJos\xe9\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["urlencoded-email", "urlencoded-name", "multipart-name"],
)
def test_invalid_utf8_in_the_form_is_refused_with_the_form(
    client: httpx.Client, settings: Settings, body: bytes, content_type: str
) -> None:
    r = client.post("/subscribe", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in r.text and "could not be read as text" in r.text
    assert 'name="email"' in r.text  # the form, to try again
    assert _subscriber(settings, "ann@example.com") is None


def test_a_file_as_the_email_field_gets_the_form_page(
    client: httpx.Client, settings: Settings
) -> None:
    r = client.post(
        "/subscribe",
        data={"name": "Ann"},
        files={"email": ("me.txt", b"ann@example.com", "text/plain")},
    )
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in r.text and "Python" not in r.text and "detail" not in r.text
    assert _subscriber(settings, "ann@example.com") is None


def test_out_of_range_ids_in_links_are_invalid_links(
    client: httpx.Client, settings: Settings
) -> None:
    for value in (10**30, 2**31, 0, -5, True):
        for purpose in tokens.Purpose:
            token = tokens._serializer(settings, purpose).dumps(value)
            path = f"/{purpose.value}/{token}"
            answers = [client.get(path)]
            if purpose is tokens.Purpose.UNSUBSCRIBE:
                answers.append(client.post(path))
            for r in answers:
                assert r.status_code == 400 and "This link is not valid" in r.text, (value, path)


def test_unexpected_errors_show_the_error_page_and_log_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database that was never initialised: not the visitor's doing, and not hidden."""
    broken = Settings()
    token = tokens.make_token(broken, tokens.Purpose.CONFIRM, 1)
    with (
        caplog.at_level(logging.ERROR, logger="digestmail.web.errors"),
        serve(broken) as url,
        httpx.Client(base_url=url) as c,
    ):
        r = c.get(f"/confirm/{token}")
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert "Something went wrong on our side" in r.text and "Traceback" not in r.text
    [record] = [rec for rec in caplog.records if rec.name == "digestmail.web.errors"]
    assert record.exc_info is not None and "no such table" in str(record.exc_info[1])
    assert record.getMessage() == "GET /confirm/{token} failed"  # the pattern, not the token
