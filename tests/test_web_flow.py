"""The public flow through the real app over HTTP: subscribe, confirm, unsubscribe."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from digestmail import tokens
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Subscriber, SubscriberSource, SubscriberStatus
from digestmail.web.pages import consent_wording
from tests.liveserver import serve
from tests.webhelpers import link_in, outbox_messages


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

    [message] = outbox_messages(Path(settings.outbox_dir))
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
    newest = outbox_messages(Path(settings.outbox_dir))[-1]
    assert client.get(link_in(newest).removeprefix(settings.base_url)).status_code == 200
    assert _subscriber(settings, "jane.doe@example.org").status is SubscriberStatus.ACTIVE  # type: ignore[union-attr]


def test_one_click_unsubscribe(client: httpx.Client, settings: Settings) -> None:
    client.post("/subscribe", data={"email": "reader@example.com"})
    [message] = outbox_messages(Path(settings.outbox_dir))
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


def test_same_answer_for_known_and_unknown(client: httpx.Client, settings: Settings) -> None:
    first = client.post("/subscribe", data={"email": "known@example.com"})
    again = client.post("/subscribe", data={"email": "known@example.com"})
    fresh = client.post("/subscribe", data={"email": "other@example.com"})
    assert first.status_code == again.status_code == fresh.status_code == 200
    assert again.text == first.text
    assert fresh.text == first.text.replace("known@example.com", "other@example.com")
    # Case-insensitively unique: still one row.
    client.post("/subscribe", data={"email": "KNOWN@EXAMPLE.COM"})
    db = Database(settings.database_url)
    with db.session() as s:
        assert len(s.scalars(select(Subscriber)).all()) == 2
    db.dispose()


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


def test_healthz_and_outbox_page(client: httpx.Client, settings: Settings) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    client.post("/subscribe", data={"email": "look@example.com"})
    page = client.get("/admin/outbox")
    assert page.status_code == 200 and "look@example.com" in page.text
    [name] = [p.name for p in Path(settings.outbox_dir).glob("*.eml")]
    raw = client.get(f"/admin/outbox/{name}")
    assert raw.status_code == 200 and b"Subject:" in raw.content
    html = client.get(f"/admin/outbox/{name}/html")
    assert html.status_code == 200 and "sandbox" in html.headers["content-security-policy"]
    assert client.get("/admin/outbox/..%2Fsubscribers.db").status_code == 404
    # Through a proxy it is somebody else, even if the proxy is local.
    assert client.get("/admin/outbox", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403
    assert (
        client.get("/admin/outbox", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 403
    )


def test_outbox_page_hidden_with_another_transport(settings: Settings) -> None:
    smtp = settings.model_copy(update={"transport": "smtp"})
    with serve(smtp) as url:
        assert httpx.get(f"{url}/admin/outbox").status_code == 404
