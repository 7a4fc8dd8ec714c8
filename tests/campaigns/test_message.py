"""The per-issue message, each recipient's values, and test sends."""

from __future__ import annotations

from email.utils import parseaddr
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, func, select, update

from digestmail import campaigns
from digestmail.campaigns import MessageNotBuilt
from digestmail.campaigns.message import RecipientValues, checked_template, load_issue
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import MAX_ID, Delivery, Issue
from digestmail.render import recipient_values, unsubscribe_mailto, webview_url
from digestmail.tokens import UnsubscribeLinks
from digestmail.transports.base import AS_IS, as_is
from tests.campaign_helpers import add_subscribers, outbox_messages, store_issue

D = cast(Table, Delivery.__table__)
I = cast(Table, Issue.__table__)  # noqa: E741


def test_test_send_goes_only_to_the_given_addresses(database: Database, small: Settings) -> None:
    add_subscribers(database, 5)
    slug = store_issue(database, small)

    result = campaigns.send_test(database, small, slug, ["user3@example.com", "editor@example.org"])

    assert sorted(a.email for a in result.accepted) == ["editor@example.org", "user3@example.com"]
    msgs = {parseaddr(str(m["To"]))[1]: m for m in outbox_messages(small.outbox_dir)}
    assert set(msgs) == {"user3@example.com", "editor@example.org"}
    assert all(str(m["Subject"]).startswith("[TEST] ") for m in msgs.values())
    # A subscriber gets their real unsubscribe link; a stranger the mailto: only.
    assert "/unsubscribe/" in str(msgs["user3@example.com"]["List-Unsubscribe"])
    assert "/unsubscribe/" not in str(msgs["editor@example.org"]["List-Unsubscribe"])
    assert campaigns.list_campaigns(database) == []
    with database.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(D)) == 0
        assert conn.scalar(select(I.c.status)) == "draft"


def test_a_test_send_finds_the_subscriber_by_the_list_s_own_address_key(
    database: Database, small: Settings
) -> None:
    # The list keys addresses with ``subscribers.email_key`` (lower-case, not case-folded:
    # "ß" is not "ss"); a test to the address in other capitals is still theirs.
    add_subscribers(database, 5)
    slug = store_issue(database, small)

    campaigns.send_test(database, small, slug, ["USER3@Example.com"])

    (msg,) = outbox_messages(small.outbox_dir)
    assert "/unsubscribe/" in str(msg["List-Unsubscribe"])
    assert str(msg["To"]) == "Reader 3 <USER3@Example.com>"  # their name, the address as given


def test_an_issue_that_cannot_become_a_message_is_refused_before_anything_is_sent(
    sqlite_url: str,
) -> None:
    # A subject stored before ``issue check`` knew the limit (PostgreSQL's column is
    # shorter than the limit, so only SQLite can hold one).
    database = Database(sqlite_url)
    small = Settings()
    slug = store_issue(database, small)
    with database.engine.begin() as conn:
        conn.execute(update(I).where(I.c.slug == slug).values(subject="S" * 1000))

    with pytest.raises(MessageNotBuilt) as raised:
        campaigns.send_test(database, small, slug, ["editor@example.org"])

    assert raised.value.campaign_id is None and raised.value.slug == slug
    assert raised.value.reason == "the Subject header is longer than 998 characters"
    assert "digestmail" not in str(raised.value)
    assert not small.outbox_dir.exists() or not any(small.outbox_dir.iterdir())
    # The same issue with an ordinary subject builds.
    issue = load_issue(database, slug)
    issue.subject = "Policy Digest 9.1"
    assert checked_template(small, issue, None).subject == "Policy Digest 9.1"
    database.dispose()


def test_recipient_values_greet_by_name_and_link_to_the_issue(small: Settings) -> None:
    values = RecipientValues(small, "policy-digest-9-1")
    known = values(7, "ann@example.org", " Ann\u202e  Smith ")
    assert known["greeting_name"] == "Dear Ann Smith,"
    assert known["unsubscribe_url"].startswith(f"{small.base_url}/unsubscribe/")
    assert known["webview_url"] == f"{small.base_url}/issues/policy-digest-9-1"
    stranger = values(None, "editor@example.org", None)
    assert stranger["greeting_name"] == "Dear reader,"
    assert stranger["unsubscribe_url"] == f"mailto:{small.contact_address}?subject=unsubscribe"


@settings(max_examples=300, deadline=None)
@given(
    subscriber_id=st.none() | st.integers(min_value=1, max_value=MAX_ID),
    email=st.emails(),
    name=st.none() | st.text(max_size=40),
)
def test_property_a_campaign_s_values_are_render_s(
    subscriber_id: int | None, email: str, name: str | None
) -> None:
    """The campaign writes ``render.recipient_values`` out for speed: for any name (none,
    blank, any script, control characters) and either kind of reader, the same values."""
    cfg = Settings()
    values = RecipientValues(cfg, "policy-digest-9-1")
    values.links.tick(1_700_000_000)
    links = UnsubscribeLinks(cfg)
    links.tick(1_700_000_000)
    expected = recipient_values(
        cfg,
        name=name,
        email=email,
        unsubscribe_url=(
            unsubscribe_mailto(cfg) if subscriber_id is None else links(subscriber_id)
        ),
        webview_url=webview_url(cfg, "policy-digest-9-1"),
    )
    assert values(subscriber_id, email, name) == expected


# Names and addresses that are now and then all plain, or plain but for one character
# that JSON or HTML escapes, a double space, or anything at all.
_names = st.sampled_from(["", '"', "\\", "&", "<", ">", "'", "  ", "\x00\n", "\xe9"]).flatmap(
    lambda odd: st.text(st.sampled_from("aZ09 .-@" + odd), max_size=30)
) | st.text(max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    subscriber_id=st.none() | st.integers(min_value=1, max_value=MAX_ID),
    delivery_id=st.integers(min_value=1, max_value=MAX_ID),
    email=st.emails() | _names,
    name=st.none() | _names,
)
def test_property_a_recipient_is_plain_exactly_when_all_of_it_goes_as_it_is(
    subscriber_id: int | None, delivery_id: int, email: str, name: str | None
) -> None:
    """``plain`` lets a transport write the values without looking at them again, so
    it must never be set for a recipient with a character that needs escaping; and it is
    set for every recipient without one (that is the point of it). Its values are the
    same as ever."""
    values = RecipientValues(Settings(), "policy-digest-9-1")
    recipient = values.recipient(delivery_id, subscriber_id, email, name)
    texts = [recipient.email, *recipient.values.values()]
    assert recipient.plain == all(map(as_is, texts))
    if recipient.plain:
        assert " ".join(recipient.values["name"].split()) == recipient.values["name"]
    assert recipient.values == values(subscriber_id, email, name)
    assert (recipient.subscriber_id, recipient.delivery_id) == (subscriber_id, delivery_id)


@pytest.mark.parametrize(
    "odd", [{"contact_address": "o'neil@example.org"}, {"base_url": "https://example.org/a&b"}]
)
def test_no_recipient_is_plain_when_what_all_share_needs_escaping(odd: dict[str, str]) -> None:
    """A contact address or site address that needs escaping is in every recipient's
    values (the mailto: or the link): then nobody is plain, however plain their name."""
    values = RecipientValues(Settings(**odd), "policy-digest-9-1")
    assert not values.recipient(1, 7, "ann@example.org", "Ann Lee").plain
    assert not values.recipient(1, None, "ann@example.org", "Ann Lee").plain


@given(text=st.text())
def test_property_as_is_is_printable_ascii_without_what_json_or_html_escapes(text: str) -> None:
    """The one C call says what the plain rule says."""
    rule = text.isascii() and text.isprintable() and not set(text) & set("\"\\&<>'")
    assert as_is(text) == rule
    assert as_is(text) == all(c.isascii() and ord(c) in AS_IS for c in text)
