"""The list's rules, directly on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from digestmail import subscribers as subs
from digestmail.db import Database
from digestmail.models import Subscriber, SubscriberSource, SubscriberStatus


def _request(db: Database, email: str) -> subs.Request:
    with db.session() as s:
        return subs.request_subscription(
            s, subs.normalize(email), name=None, source=SubscriberSource.FORM, consent_text="t"
        )


def test_normalize_keeps_local_part_and_lowers_domain() -> None:
    a = subs.normalize("  Jane.Doe@EXAMPLE.org ")
    assert (a.email, a.key) == ("Jane.Doe@example.org", "jane.doe@example.org")
    with pytest.raises(subs.InvalidAddress, match="not a valid email address"):
        subs.normalize("jane@")
    with pytest.raises(subs.InvalidAddress):
        subs.normalize("   ")


def test_clean_name() -> None:
    assert subs.clean_name(" a\x00b \n c ") == "a b c"
    assert subs.clean_name("   ") is None
    assert len(subs.clean_name("x" * 500) or "") == subs.NAME_MAX


def test_confirm_unsubscribe_suppress(database: Database) -> None:
    req = _request(database, "A@Example.com")
    assert req.needs_confirmation
    assert _request(database, "a@example.COM").subscriber_id == req.subscriber_id
    with database.session() as s:
        assert subs.confirm(s, req.subscriber_id)[0] is subs.ConfirmResult.CONFIRMED
        assert subs.confirm(s, req.subscriber_id)[0] is subs.ConfirmResult.ALREADY
        assert subs.confirm(s, 999_999)[0] is subs.ConfirmResult.UNKNOWN
    assert not _request(database, "a@example.com").needs_confirmation  # active: nothing to do
    with database.session() as s:
        subs.suppress(s, req.subscriber_id, SubscriberStatus.COMPLAINED)
        # Neither an unsubscribe nor a bounce downgrades a complaint.
        subs.suppress(s, req.subscriber_id, SubscriberStatus.BOUNCED)
        subs.unsubscribe(s, req.subscriber_id)
        assert s.get_one(Subscriber, req.subscriber_id).status is SubscriberStatus.COMPLAINED
        with pytest.raises(ValueError):
            subs.suppress(s, req.subscriber_id, SubscriberStatus.ACTIVE)


def test_erased_ids_are_never_reused(database: Database) -> None:
    first = _request(database, "first@example.com").subscriber_id
    last = _request(database, "last@example.com").subscriber_id
    with database.session() as s:
        assert subs.erase(s, "last@example.com")
    newcomer = _request(database, "new@example.com").subscriber_id
    assert newcomer not in (first, last)  # old unsubscribe links must not reach a stranger
    with database.session() as s:
        assert s.scalars(select(Subscriber.email_key).order_by(Subscriber.id)).all() == [
            "first@example.com",
            "new@example.com",
        ]
