"""The list's rules, directly on both databases."""

from __future__ import annotations

import hashlib
import re

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from digestmail import subscribers as subs
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import ErasedAddress, Subscriber, SubscriberSource, SubscriberStatus


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


def test_normalize_keeps_only_what_the_transports_can_send() -> None:
    # A non-ASCII local part needs SMTPUTF8, which neither SMTP here nor SendGrid speaks.
    with pytest.raises(subs.UnmailableAddress) as caught:
        subs.normalize("josé@example.com")
    assert "before the @" in caught.value.reason and "another address" in caught.value.reason
    assert "cannot be mailed" in str(caught.value)
    # Broken anyway: the real error, not the SMTPUTF8 one.
    with pytest.raises(subs.InvalidAddress) as caught:
        subs.normalize("josé@@example.com")
    assert not isinstance(caught.value, subs.UnmailableAddress)
    # An internationalised domain is stored as punycode, one subscriber in either form.
    idn = subs.normalize("Jane@Bücher.de")
    assert (idn.email, idn.key) == ("Jane@xn--bcher-kva.de", "jane@xn--bcher-kva.de")
    assert subs.normalize("jane@xn--bcher-kva.de").key == idn.key
    assert subs.normalize("o'brien@example.com").email == "o'brien@example.com"


def test_clean_name() -> None:
    assert subs.clean_name(" a\x00b \n c ") == "a b c"
    assert subs.clean_name("   ") is None
    assert len(subs.clean_name("x" * 500) or "") == subs.NAME_MAX


def test_confirm_unsubscribe_suppress(database: Database, settings: Settings) -> None:
    req = _request(database, "A@Example.com")
    assert req.needs_confirmation
    assert _request(database, "a@example.COM").subscriber_id == req.subscriber_id
    with database.session() as s:
        assert subs.confirm(s, settings, req.subscriber_id)[0] is subs.ConfirmResult.CONFIRMED
        assert subs.confirm(s, settings, req.subscriber_id)[0] is subs.ConfirmResult.ALREADY
        assert subs.confirm(s, settings, 999_999)[0] is subs.ConfirmResult.UNKNOWN
    assert not _request(database, "a@example.com").needs_confirmation  # active: nothing to do
    with database.session() as s:
        subs.suppress(s, req.subscriber_id, SubscriberStatus.COMPLAINED)
        # Neither an unsubscribe nor a bounce downgrades a complaint.
        subs.suppress(s, req.subscriber_id, SubscriberStatus.BOUNCED)
        subs.unsubscribe(s, req.subscriber_id)
        assert s.get_one(Subscriber, req.subscriber_id).status is SubscriberStatus.COMPLAINED
        with pytest.raises(ValueError):
            subs.suppress(s, req.subscriber_id, SubscriberStatus.ACTIVE)


def test_erased_ids_are_never_reused(database: Database, settings: Settings) -> None:
    first = _request(database, "first@example.com").subscriber_id
    last = _request(database, "last@example.com").subscriber_id
    with database.session() as s:
        assert subs.erase(s, settings, "last@example.com")
    newcomer = _request(database, "new@example.com").subscriber_id
    assert newcomer not in (first, last)  # old unsubscribe links must not reach a stranger
    with database.session() as s:
        assert s.scalars(select(Subscriber.email_key).order_by(Subscriber.id)).all() == [
            "first@example.com",
            "new@example.com",
        ]


def test_staff_removal_never_weakens_a_suppression(database: Database) -> None:
    ids = {e: _request(database, f"{e}@example.com").subscriber_id for e in ("c", "b", "u")}
    with database.session() as s:
        subs.suppress(s, ids["c"], SubscriberStatus.COMPLAINED)
        subs.suppress(s, ids["b"], SubscriberStatus.BOUNCED)
        subs.unsubscribe(s, ids["u"])
        left_at = s.get_one(Subscriber, ids["u"]).unsubscribed_at
    with database.session() as s:
        assert subs.remove(s, "C@example.com") is not None
        assert subs.remove(s, "b@example.com") is not None
        assert subs.remove(s, "u@example.com") is not None
        assert subs.remove(s, "nobody@example.com") is None
    with database.session() as s:
        status = {e: s.get_one(Subscriber, i) for e, i in ids.items()}
        assert status["c"].status is SubscriberStatus.COMPLAINED  # the complaint is kept
        # By the same ranking as suppress(): an unsubscribe outranks a bounce.
        assert status["b"].status is SubscriberStatus.UNSUBSCRIBED
        assert status["u"].status is SubscriberStatus.UNSUBSCRIBED
        assert status["u"].unsubscribed_at == left_at  # the first date is kept


def test_erasure_hash_is_keyed(database: Database, settings: Settings) -> None:
    key = "erin@example.org"
    digest = subs.erased_hash(settings, key)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)  # fits ErasedAddress.email_hash as before
    assert digest == subs.erased_hash(settings, key)  # stable
    # Hashing candidate addresses without the secret key finds nothing.
    for guess in (key, f"digestmail-erased:{key}"):
        assert digest != hashlib.sha256(guess.encode()).hexdigest()
    other = settings.model_copy(update={"secret_key": SecretStr("another-secret-key-0123456789")})
    assert subs.erased_hash(other, key) != digest
    with database.session() as s:
        subs.erase(s, settings, "Erin@Example.org")
    with database.session() as s:
        assert list(s.scalars(select(ErasedAddress.email_hash))) == [digest]
        assert subs.is_erased(s, settings, key)
        assert not subs.is_erased(s, other, key)
