"""The SendGrid transport against the fake SendGrid server on 127.0.0.1."""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.campaigns.message import RecipientValues
from digestmail.config import Settings
from digestmail.placeholders import FIELDS, Template, token
from digestmail.transports.base import MessageTemplate, Recipient, TransportError
from digestmail.transports.sendgrid import SendGridTransport, _Body, _JSONText
from tests.fakes.sendgrid import FakeSendGrid

API_KEY = "SG.test-key-do-not-log"

TEMPLATE = MessageTemplate(
    subject="Policy Digest for %%name%%",
    html='<p>Dear %%greeting_name:html%%</p><a href="%%unsubscribe_url:html%%">Unsubscribe</a>',
    text="Dear %%greeting_name%%\nUnsubscribe: %%unsubscribe_url%%\n",
    from_addr="Policy Digest <digest@example.org>",
    reply_to="editors@example.org",
    headers={"List-Id": "Policy Digest <policy-digest.example.org>"},
    unsubscribe_mailto="mailto:unsubscribe@example.org",
    campaign_id=12,
    categories=("Policy Digest", "vol-3.2"),
)


def recipients(n: int, start: int = 0) -> list[Recipient]:
    return [
        Recipient(
            f"reader{i}@example.net",
            {
                "name": f"Reader <{i}> & Co",
                "greeting_name": f"Reader {i}",
                "unsubscribe_url": f"https://x.test/unsubscribe/t{i}?a=1&b=2",
            },
            subscriber_id=i,
            delivery_id=5000 + i,
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=API_KEY) as f:
        yield f


def transport(fake: FakeSendGrid, key: str = API_KEY, **kw: float) -> SendGridTransport:
    settings = Settings(
        transport="sendgrid",
        sendgrid_api_key=key,
        sendgrid_api_host=fake.url,
        sendgrid_timeout=5,
    )
    options: dict[str, float] = {"backoff": 0.01, "backoff_cap": 0.05}
    options.update(kw)
    return SendGridTransport(settings, **options)  # type: ignore[arg-type]


def test_one_request_carries_the_batch_with_everything_per_recipient(fake: FakeSendGrid) -> None:
    result = transport(fake).send_batch(TEMPLATE, recipients(1000))
    assert len(result.accepted) == 1000 and not result.rejected
    assert len(fake.requests) == 1
    assert {a.message_id for a in result.accepted} == {fake.message_ids[0]}
    body = fake.requests[0]
    assert body["from"] == {"email": "digest@example.org", "name": "Policy Digest"}
    assert body["reply_to"] == {"email": "editors@example.org"}
    assert body["subject"] == TEMPLATE.subject
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"] == {"List-Id": "Policy Digest <policy-digest.example.org>"}
    assert body["categories"] == ["Policy Digest", "vol-3.2"]
    assert body["mail_settings"] == {"sandbox_mode": {"enable": False}}
    p = body["personalizations"][7]
    assert p["to"] == [{"email": "reader7@example.net", "name": "Reader <7> & Co"}]
    assert p["custom_args"] == {"campaign_id": "12", "subscriber_id": "7", "delivery_id": "5007"}
    assert p["headers"] == {
        "List-Unsubscribe": "<https://x.test/unsubscribe/t7?a=1&b=2>, "
        "<mailto:unsubscribe@example.org>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    # what SendGrid will produce with these substitutions equals our own substitution
    subs = p["substitutions"]

    def sendgrid_fill(text: str) -> str:
        for key, value in subs.items():
            text = text.replace(key, value)
        return text

    values = recipients(8)[7].values
    for part in (TEMPLATE.subject, TEMPLATE.text, TEMPLATE.html):
        assert sendgrid_fill(part) == Template.parse(part).substitute(values)
    assert "Reader &lt;7&gt; &amp; Co" not in sendgrid_fill(TEMPLATE.html)  # name unused in html
    assert 'href="https://x.test/unsubscribe/t7?a=1&amp;b=2"' in sendgrid_fill(TEMPLATE.html)
    # only the tokens the message uses travel
    assert "%%webview_url%%" not in subs


def test_repeated_address_is_rejected_not_sent_twice(fake: FakeSendGrid) -> None:
    batch = [*recipients(3), Recipient("READER1@example.net", {})]
    result = transport(fake).send_batch(TEMPLATE, batch)
    assert [r.email for r in result.rejected] == ["READER1@example.net"]
    assert len(result.accepted) == 3
    assert len(fake.personalizations()) == 3


def test_confirmation_mail_has_no_list_headers(fake: FakeSendGrid) -> None:
    one_off = MessageTemplate(
        subject="Confirm", html="<p>x</p>", text="x", from_addr="d@example.org", bulk=False
    )
    transport(fake).send_batch(one_off, [Recipient("a@example.net", {})])
    p = fake.personalizations()[0]
    assert "headers" not in p and "substitutions" not in p and "custom_args" not in p


def test_429_is_retried_honouring_retry_after(fake: FakeSendGrid) -> None:
    fake.fail_next(429, times=2, retry_after=0.4)
    start = time.monotonic()
    result = transport(fake).send_batch(TEMPLATE, recipients(5))
    assert time.monotonic() - start >= 0.8
    assert len(result.accepted) == 5
    assert fake.statuses == [429, 429, 202]


def test_5xx_is_retried_then_raised_as_temporary(fake: FakeSendGrid) -> None:
    fake.fail_next(500, times=3)
    with pytest.raises(TransportError) as err:
        transport(fake, max_attempts=3).send_batch(TEMPLATE, recipients(5))
    assert not err.value.permanent
    assert "500" in str(err.value) and "3 attempts" in str(err.value)
    assert fake.calls == 3 and not fake.requests


def test_long_retry_after_is_handed_to_the_caller(fake: FakeSendGrid) -> None:
    fake.fail_next(429, retry_after=120)
    start = time.monotonic()
    with pytest.raises(TransportError) as err:
        transport(fake, max_wait=10).send_batch(TEMPLATE, recipients(2))
    assert time.monotonic() - start < 5
    assert not err.value.permanent and err.value.retry_after == 120


def test_wrong_key_is_permanent_in_plain_words(
    fake: FakeSendGrid, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransportError) as err:
        transport(fake, key="SG.wrong-secret-key").send_batch(TEMPLATE, recipients(2))
    assert err.value.permanent
    assert str(err.value).startswith("SendGrid refused the API key (401): ")
    assert "authorization grant is invalid" in str(err.value)
    assert fake.calls == 1  # never retried
    assert "wrong-secret-key" not in caplog.text and "wrong-secret-key" not in str(err.value)


def test_400_carries_sendgrids_message_and_field(fake: FakeSendGrid) -> None:
    bad = MessageTemplate(
        subject="x",
        html="<p>x</p>",
        text="x",
        from_addr="d@example.org",
        headers={"Reply-To": "someone@example.org"},
    )
    with pytest.raises(TransportError) as err:
        transport(fake).send_batch(bad, recipients(1))
    assert err.value.permanent
    assert str(err.value).startswith("SendGrid refused the request (400): ")
    assert "reserved" in str(err.value) and "(field headers.Reply-To)" in str(err.value)


def test_unreachable_host_is_temporary() -> None:
    with FakeSendGrid(api_key=API_KEY) as gone:
        pass
    with pytest.raises(TransportError) as err:
        transport(gone, max_attempts=2).send_batch(TEMPLATE, recipients(1))
    assert not err.value.permanent
    assert "cannot reach SendGrid" in str(err.value)


def test_key_never_logged(fake: FakeSendGrid, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(503)
    transport(fake).send_batch(TEMPLATE, recipients(2))
    assert API_KEY not in caplog.text


def test_the_posted_body_is_the_request_text_and_logs_as_its_size() -> None:
    """The client encodes the body it is handed and formats it into a debug line whether
    or not debug logging is on: the bytes are the request's text, formatted its size."""
    text = _Body(TEMPLATE).request(recipients(3))
    payload = _JSONText(text).encode("utf-8")
    assert payload == text.encode("utf-8")
    assert json.loads(payload)["personalizations"][2]["to"][0]["email"] == "reader2@example.net"
    assert f"PAYLOAD: {payload}" == f"PAYLOAD: <{len(payload)} bytes of JSON>"
    assert json.loads(_Body(TEMPLATE).request([]))["personalizations"] == []
    assert len(json.loads(_Body(TEMPLATE).request(recipients(1)))["personalizations"]) == 1


_text = st.text(max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    email=st.emails(),
    name=_text,
    greeting=_text,
    url=_text,
    subscriber_id=st.none() | st.integers(min_value=1, max_value=2**62),
    delivery_id=st.none() | st.integers(min_value=1, max_value=2**62),
    bulk=st.booleans(),
    is_test=st.booleans(),
)
def test_property_the_request_is_json_with_each_value_where_sendgrid_reads_it(
    email: str,
    name: str,
    greeting: str,
    url: str,
    subscriber_id: int | None,
    delivery_id: int | None,
    bulk: bool,
    is_test: bool,
) -> None:
    """The request body is written as JSON text, not built as dicts: whatever the values
    (quotes, backslashes, control characters, any script), it parses back to them."""
    template = replace(TEMPLATE, bulk=bulk, is_test=is_test)
    values = {"name": name, "greeting_name": greeting, "unsubscribe_url": url}
    recipient = Recipient(email, values, subscriber_id=subscriber_id, delivery_id=delivery_id)
    text = _Body(template).request([recipient, recipient])
    body = json.loads(text)
    assert text.isascii()
    (p, again) = body["personalizations"]
    assert again == p
    to = {"email": email}
    if " ".join(name.split()):
        to["name"] = " ".join(name.split())
    assert p["to"] == [to]
    assert p["substitutions"] == {
        "%%greeting_name%%": greeting,
        "%%greeting_name:html%%": html.escape(greeting, quote=True),
        "%%name%%": name,
        "%%unsubscribe_url%%": url,
        "%%unsubscribe_url:html%%": html.escape(url, quote=True),
    }
    args = {"campaign_id": "12"}
    if subscriber_id is not None:
        args["subscriber_id"] = str(subscriber_id)
    if delivery_id is not None:
        args["delivery_id"] = str(delivery_id)
    if is_test:
        args["test"] = "1"
    assert p["custom_args"] == args
    if bulk:
        unsubscribe = (
            f"<{url}>, <mailto:unsubscribe@example.org>"
            if url
            else ("<mailto:unsubscribe@example.org>")
        )
        expected = {"List-Unsubscribe": unsubscribe}
        if url:
            expected["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        assert p["headers"] == expected
    else:
        assert "headers" not in p
    assert body["subject"] == TEMPLATE.subject and body["headers"] == dict(TEMPLATE.headers)


def test_a_429_holds_back_every_request_of_the_transport(fake: FakeSendGrid) -> None:
    """Several batches sent at once through one transport: the one told to wait makes
    the others wait too, instead of each finding out with a 429 of its own."""
    tx = transport(fake)
    fake.fail_next(429, retry_after=0.6)
    first = threading.Thread(target=tx.send_batch, args=(TEMPLATE, recipients(5)))
    first.start()
    deadline = time.monotonic() + 5
    while not fake.hits and time.monotonic() < deadline:
        time.sleep(0.01)
    told = time.monotonic()
    time.sleep(0.05)  # the 429 is back and held
    others = [
        threading.Thread(target=tx.send_batch, args=(TEMPLATE, recipients(5, start=10 * i)))
        for i in range(1, 4)
    ]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join()
    later = [h.arrived for h in fake.hits if h.status == 202]
    assert len(later) == 4 and min(later) >= told + 0.5
    assert fake.statuses.count(429) == 1


# Text with what JSON, HTML and a %-format each treat specially: ASCII only (the values of
# most recipients) or in any script.
_tricky = st.text(
    st.sampled_from("\"\\<>&'% \x7f") | st.characters(max_codepoint=127),
    max_size=20,
) | st.text(
    st.sampled_from("\"\\<>&'%\x00\x1f\n\r\t\u2028\u00e9\u200d\U0001f600 ") | st.characters(),
    max_size=20,
)


def _reference_personalization(template: MessageTemplate, r: Recipient) -> dict[str, Any]:
    """What a personalization says, built as dicts the plain way."""
    values = r.values
    to = {"email": r.email}
    name = " ".join(values.get("name", "").split())
    if name:
        to["name"] = name
    p: dict[str, Any] = {"to": [to]}
    subs = {}
    for part in (template.subject, template.text, template.html):
        for field, is_html in Template.parse(part).slots:
            value = values.get(field, "")
            subs[token(field, html_part=is_html)] = html.escape(value) if is_html else value
    if subs:
        p["substitutions"] = subs
    url = values.get("unsubscribe_url")
    links = [f"<{x}>" for x in (url, template.unsubscribe_mailto) if x]
    if template.bulk and links:
        p["headers"] = {"List-Unsubscribe": ", ".join(links)}
        if url:
            p["headers"]["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    args = {}
    if template.campaign_id is not None:
        args["campaign_id"] = str(template.campaign_id)
    if template.is_test:
        args["test"] = "1"
    if r.subscriber_id is not None:
        args["subscriber_id"] = str(r.subscriber_id)
    if r.delivery_id is not None:
        args["delivery_id"] = str(r.delivery_id)
    if args:
        p["custom_args"] = args
    return p


@settings(max_examples=300, deadline=None)
@given(
    email=_tricky,
    values=st.dictionaries(st.sampled_from(FIELDS), _tricky),
    slots=st.lists(st.tuples(st.sampled_from(FIELDS), st.booleans()), max_size=6),
    ids=st.tuples(st.integers(1, 2**62), st.integers(1, 2**62)) | st.none(),
    mailto=st.none() | _tricky.map(lambda t: "mailto:" + t),
    campaign_id=st.none() | st.integers(1, 2**31),
    bulk=st.booleans(),
    is_test=st.booleans(),
)
def test_property_the_campaign_frame_writes_what_the_general_path_writes(
    email: str,
    values: dict[str, str],
    slots: list[tuple[str, bool]],
    ids: tuple[int, int] | None,
    mailto: str | None,
    campaign_id: int | None,
    bulk: bool,
    is_test: bool,
) -> None:
    """A campaign's recipients fill a frame compiled for the message; anyone else takes
    the general path. For any message (fields used in either part or none, List-Unsubscribe
    mailto or not, ids or not) and any values (quotes, backslashes, <>&, '%', control
    characters, any script, a link or none): the frame writes the very same text, and
    that text parses to the personalization built as dicts."""
    template = _template_using(
        slots,
        unsubscribe_mailto=mailto,
        campaign_id=campaign_id,
        bulk=bulk,
        is_test=is_test,
    )
    sid, did = ids or (None, None)
    _check_frame(template, Recipient(email, values, subscriber_id=sid, delivery_id=did))


def _template_using(slots: list[tuple[str, bool]], **kw: Any) -> MessageTemplate:
    text = " ".join(token(f, html_part=False) for f, is_html in slots if not is_html)
    html_part = "<p>" + " ".join(token(f, html_part=True) for f, is_html in slots if is_html)
    return replace(TEMPLATE, subject="Digest", text=text, html=html_part, **kw)


def _check_frame(template: MessageTemplate, recipient: Recipient) -> None:
    body = _Body(template)
    written = body.personalization(recipient)
    assert written == body.general(recipient)
    assert json.loads(written) == _reference_personalization(template, recipient)
    assert written.isascii()


# One kind of text for all of a recipient's values, so that a whole recipient is now and
# then plain ASCII, or plain but for one character that JSON or HTML escapes (the frame
# decides for all the values at once), or anything at all.
_one_kind = st.sampled_from(
    ["", '"', "\\", "&", "<", ">", "'", "\x00\x1f\x7f\n\t", "\xe9\u2028\U0001f600"]
).map(lambda odd: st.text(st.sampled_from("aZ09 .:/@-_" + odd), max_size=20)) | st.just(_tricky)


@settings(max_examples=300, deadline=None)
@given(
    kind=_one_kind,
    data=st.data(),
    slots=st.just([(f, is_html) for f in FIELDS for is_html in (False, True)])
    | st.lists(st.tuples(st.sampled_from(FIELDS), st.booleans()), max_size=6),
    ids=st.tuples(st.integers(1, 2**62), st.integers(1, 2**62)),
    mailto=st.none() | _tricky.map(lambda t: "mailto:" + t),
    campaign_id=st.none() | st.integers(1, 2**31),
)
def test_property_every_campaign_recipient_takes_the_frame_to_the_same_text(
    kind: st.SearchStrategy[str],
    data: st.DataObject,
    slots: list[tuple[str, bool]],
    ids: tuple[int, int],
    mailto: str | None,
    campaign_id: int | None,
) -> None:
    """The same, for a campaign's recipients only (bulk mail, both ids, a link, every
    value): each of them takes the frame, so odd templates and values meet it more
    often."""
    template = _template_using(slots, unsubscribe_mailto=mailto, campaign_id=campaign_id)
    email = data.draw(kind)
    values = {field: data.draw(kind) for field in FIELDS}
    values["unsubscribe_url"] = data.draw(kind.filter(bool))
    _check_frame(template, Recipient(email, values, subscriber_id=ids[0], delivery_id=ids[1]))


@pytest.mark.parametrize(
    "odd", ["", '"', "\\", "&", "<", ">", "'", "\x00", "\x7f", "\xe9", "\u2028"]
)
def test_one_odd_character_anywhere_in_a_campaign_recipient_is_written_right(odd: str) -> None:
    """Each character JSON or HTML escapes, alone in an otherwise plain recipient (the
    frame decides for all the values at once whether any needs escaping), in any one
    value or the address."""
    template = _template_using([(f, is_html) for f in FIELDS for is_html in (False, True)])
    plain = {field: f"Ann {field} Lee" for field in FIELDS}
    for where in (*FIELDS, "address"):
        values = {**plain, where: f"Ann {odd} Lee"} if where in plain else plain
        email = f"ann{odd}@example.org" if where == "address" else "ann@example.org"
        _check_frame(template, Recipient(email, values, subscriber_id=7, delivery_id=5007))


@settings(max_examples=300, deadline=None)
@given(
    name=st.none() | _tricky | st.text(st.sampled_from("aZ09 .-"), max_size=20),
    email=_tricky | st.emails(),
    slots=st.lists(st.tuples(st.sampled_from(FIELDS), st.booleans()), max_size=6),
    ids=st.tuples(st.integers(1, 2**62), st.integers(1, 2**62)),
    mailto=st.none() | st.just("mailto:digest@example.org?subject=unsubscribe"),
)
def test_property_a_plain_recipient_of_a_campaign_is_written_as_any_other(
    name: str | None,
    email: str,
    slots: list[tuple[str, bool]],
    ids: tuple[int, int],
    mailto: str | None,
) -> None:
    """A recipient the campaign marks ``plain`` goes into the frame without its values
    being looked at again: for any message and any name or address, the text is still
    the general path's (and a recipient that is not plain is checked as before)."""
    values = RecipientValues(Settings(), "policy-digest-9-1")
    recipient = values.recipient(ids[1], ids[0], email, name)
    _check_frame(_template_using(slots, unsubscribe_mailto=mailto, campaign_id=3), recipient)
