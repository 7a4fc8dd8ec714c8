"""The list's rules, directly on both databases."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import delete, event, func, select

from digestmail import subscribers as subs
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import (
    ChangeCause,
    ErasedAddress,
    SoftBounce,
    Subscriber,
    SubscriberChange,
    SubscriberSource,
    SubscriberStatus,
    SubscriptionRequest,
    utcnow,
)


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


def test_local_part_over_64_characters_is_refused() -> None:
    assert subs.normalize("a" * 64 + "@example.com").email == "a" * 64 + "@example.com"
    with pytest.raises(subs.InvalidAddress, match="too long before the @"):
        subs.normalize("a" * 65 + "@example.com")


# --- requests and the consent record ---------------------------------------------------

_RECORD = ("status", "name", "source", "consent_at", "consent_ip", "consent_by", "consent_text")


def _record(db: Database, subscriber_id: int) -> dict[str, object]:
    with db.session() as s:
        sub = s.get_one(Subscriber, subscriber_id)
        return {key: getattr(sub, key) for key in _RECORD}


def _stranger(db: Database, email: str, **kwargs: object) -> subs.Request:
    """Somebody else asks for ``email`` with details of their own."""
    details: dict[str, object] = {
        "name": "Mallory",
        "source": SubscriberSource.FORM,
        "consent_text": "typed by a stranger",
        "ip": "198.51.100.66",
    }
    details.update(kwargs)
    with db.session() as s:
        return subs.request_subscription(s, subs.normalize(email), **details)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "state",
    ["staff-pending", "active", *sorted(s.value for s in subs.SUPPRESSED)],
)
def test_a_request_never_changes_an_existing_subscriber(
    database: Database, settings: Settings, state: str
) -> None:
    with database.session() as s:
        sub, _ = subs.add_by_staff(
            s,
            subs.normalize("kim@example.com"),
            name="Kim",
            confirmed=state != "staff-pending",
            staff="staff:pat",
            settings=settings,
        )
        sub_id = sub.id
        if state in {s.value for s in subs.SUPPRESSED}:
            subs.suppress(s, sub_id, SubscriberStatus(state))
    before = _record(database, sub_id)
    _stranger(database, "KIM@example.com")
    _stranger(database, "kim@example.com", source=SubscriberSource.EMAIL, ip=None, by=None)
    assert _record(database, sub_id) == before


def test_confirmation_applies_the_request_its_link_was_sent_for(
    database: Database, settings: Settings
) -> None:
    first = _request(database, "lee@example.com")
    with database.session() as s:
        subs.unsubscribe(s, first.subscriber_id)
    # An hour ago Lee asked again and was sent a link; a stranger has asked since.
    asked = _stranger(database, "lee@example.com", name="Lee", ip="192.0.2.1", consent_text="Lee")
    an_hour_ago = utcnow() - timedelta(hours=1)
    with database.session() as s:
        s.get_one(SubscriptionRequest, asked.request_id).requested_at = an_hour_ago
    _stranger(database, "lee@example.com", by="someone", source=SubscriberSource.EMAIL)
    with database.session() as s:
        s.get_one(Subscriber, first.subscriber_id).unsubscribed_at = an_hour_ago - timedelta(
            minutes=1
        )
    with database.session() as s:
        result, _ = subs.confirm(s, settings, first.subscriber_id, an_hour_ago)
    assert result is subs.ConfirmResult.CONFIRMED
    record = _record(database, first.subscriber_id)
    assert record["status"] is SubscriberStatus.ACTIVE and record["name"] == "Lee"
    assert (record["consent_ip"], record["consent_text"], record["consent_by"]) == (
        "192.0.2.1",
        "Lee",
        None,
    )
    assert record["consent_at"] == an_hour_ago and record["source"] is SubscriberSource.FORM
    with database.session() as s:
        confirmed = s.scalars(
            select(SubscriptionRequest).where(SubscriptionRequest.confirmed_at.is_not(None))
        ).all()
    assert [r.id for r in confirmed] == [asked.request_id]


def test_a_link_older_than_the_unsubscribe_is_stale(database: Database, settings: Settings) -> None:
    req = _request(database, "old@example.com")
    with database.session() as s:
        subs.confirm(s, settings, req.subscriber_id)
        subs.unsubscribe(s, req.subscriber_id)
    with database.session() as s:
        sub = s.get_one(Subscriber, req.subscriber_id)
        requested = s.get_one(SubscriptionRequest, req.request_id).requested_at
        sub.unsubscribed_at = requested + timedelta(minutes=5)
    before = _record(database, req.subscriber_id)
    with database.session() as s:
        result, _ = subs.confirm(s, settings, req.subscriber_id, requested)
    assert result is subs.ConfirmResult.STALE and _record(database, req.subscriber_id) == before


def test_links_sent_before_requests_were_kept_still_confirm(
    database: Database, settings: Settings
) -> None:
    """A confirmation link mailed before this version keeps working for its 7 days."""
    req = _request(database, "early@example.com")
    with database.session() as s:  # as the rows of that time: the request is on the row only
        s.execute(delete(SubscriptionRequest))
    before = _record(database, req.subscriber_id)
    with database.session() as s:
        result, _ = subs.confirm(s, settings, req.subscriber_id, utcnow() - timedelta(days=6))
    assert result is subs.ConfirmResult.CONFIRMED
    after = _record(database, req.subscriber_id)
    assert after.pop("status") is SubscriberStatus.ACTIVE
    before.pop("status")
    assert after == before


def test_staff_vouching_applies_their_own_request(database: Database, settings: Settings) -> None:
    _stranger(database, "vic@example.com")  # pending, from the form
    with database.session() as s:
        sub, mail = subs.add_by_staff(
            s,
            subs.normalize("vic@example.com"),
            name="Vic",
            confirmed=True,
            staff="staff:pat",
            settings=settings,
        )
        sub_id = sub.id
    record = _record(database, sub_id)
    assert not mail and record["status"] is SubscriberStatus.ACTIVE
    assert (record["source"], record["consent_by"], record["consent_ip"], record["name"]) == (
        SubscriberSource.STAFF,
        "staff:pat",
        None,
        "Vic",
    )


def test_open_requests_per_subscriber_are_capped(database: Database) -> None:
    for i in range(subs._OPEN_REQUESTS_KEPT + 5):
        last = _stranger(database, "flood@example.com", consent_text=f"request {i}")
    with database.session() as s:
        texts = s.scalars(select(SubscriptionRequest.text).order_by(SubscriptionRequest.id)).all()
    assert len(texts) == subs._OPEN_REQUESTS_KEPT and texts[-1] == f"request {i}"
    with database.session() as s:
        assert s.get(SubscriptionRequest, last.request_id) is not None


def test_erasure_removes_the_requests_too(database: Database, settings: Settings) -> None:
    _stranger(database, "gone@example.com")
    _stranger(database, "gone@example.com")
    with database.session() as s:
        subs.erase(s, settings, "gone@example.com")
    with database.session() as s:
        assert s.scalars(select(SubscriptionRequest)).all() == []


def test_subscribe_does_the_same_work_whatever_the_address_state(
    database: Database, settings: Settings
) -> None:
    """The statements a request runs are the same for every state (timing tells nothing)."""
    states = {
        "pending@example.com": SubscriberStatus.PENDING,
        "active@example.com": SubscriberStatus.ACTIVE,
        "left@example.com": SubscriberStatus.UNSUBSCRIBED,
        "bounced@example.com": SubscriberStatus.BOUNCED,
    }
    for email, state in states.items():
        req = _request(database, email)
        with database.session() as s:
            if state is SubscriberStatus.ACTIVE:
                subs.confirm(s, settings, req.subscriber_id)
            elif state is not SubscriberStatus.PENDING:
                subs.suppress(s, req.subscriber_id, state)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    work: dict[str, list[str]] = {}
    event.listen(database.engine, "before_cursor_execute", record)
    try:
        for email in [*states, "new@example.com"]:
            statements.clear()
            _stranger(database, email)
            work[email] = list(statements)
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert len({tuple(w) for w in work.values()}) == 1, work


# --- every change of status, with its cause -----------------------------------------


def _history(db: Database, settings: Settings, email: str) -> list[tuple[Any, ...]]:
    with db.session() as s:
        record = subs.record_of(s, settings, email)
        assert record is not None
        return [(c.old_status, c.new_status, c.cause, c.by) for c in record.changes]


def test_every_path_that_changes_a_status_records_it_with_its_cause(
    database: Database, settings: Settings
) -> None:
    active, pending = SubscriberStatus.ACTIVE, SubscriberStatus.PENDING
    req = _request(database, "ann@example.com")
    with database.session() as s:
        subs.confirm(s, settings, req.subscriber_id)
    with database.session() as s:
        subs.unsubscribe(s, req.subscriber_id)
    with database.session() as s:
        subs.unsubscribe(s, req.subscriber_id)  # again: nothing changes, nothing recorded
    assert _history(database, settings, "ann@example.com") == [
        (None, pending, ChangeCause.FORM, None),
        (pending, active, ChangeCause.CONFIRMATION_LINK, None),
        (active, SubscriberStatus.UNSUBSCRIBED, ChangeCause.UNSUBSCRIBE_LINK, None),
    ]
    with database.session() as s:
        subs.add_by_staff(
            s,
            subs.normalize("bo@example.com"),
            name=None,
            confirmed=True,
            staff="staff:kim",
            settings=settings,
        )
    with database.session() as s:
        subs.remove(s, "bo@example.com", by="staff:lee")
    assert _history(database, settings, "bo@example.com") == [
        (None, pending, ChangeCause.STAFF, "staff:kim"),
        (pending, active, ChangeCause.STAFF, "staff:kim"),
        (active, SubscriberStatus.UNSUBSCRIBED, ChangeCause.STAFF, "staff:lee"),
    ]
    with database.session() as s:
        subs.import_rows(
            s,
            [subs.ImportRow(2, "cy@example.com", None)],
            double_opt_in=False,
            staff="staff:kim",
            source_label="list.csv",
            settings=settings,
        )
    with database.session() as s:
        record = subs.record_of(s, settings, "cy@example.com")
    assert record is not None
    [created] = record.changes
    assert (created.new_status, created.cause, created.detail) == (
        active,
        ChangeCause.IMPORT,
        "list.csv",
    )


def test_a_complaint_cannot_be_undone_by_the_public_only_by_staff(
    database: Database, settings: Settings
) -> None:
    req = _request(database, "dee@example.com")
    with database.session() as s:
        subs.confirm(s, settings, req.subscriber_id)
        signed_before = utcnow()
        subs.suppress(s, req.subscriber_id, SubscriberStatus.COMPLAINED)
    again = _request(database, "dee@example.com")
    assert again.outcome is subs.Outcome.COMPLAINED
    assert not again.needs_confirmation  # no mail at all
    with database.session() as s:
        result, sub = subs.confirm(s, settings, req.subscriber_id, signed_before)
        assert result is subs.ConfirmResult.STALE
        assert sub is not None and sub.status is SubscriberStatus.COMPLAINED
        with pytest.raises(subs.Complained):
            subs.add_by_staff(
                s,
                subs.normalize("dee@example.com"),
                name=None,
                confirmed=False,
                staff="staff:kim",
                settings=settings,
            )
    with database.session() as s:
        sub, needs_mail = subs.add_by_staff(
            s,
            subs.normalize("dee@example.com"),
            name=None,
            confirmed=True,
            staff="staff:kim",
            settings=settings,
        )
        assert sub.status is SubscriberStatus.ACTIVE and not needs_mail
    last = _history(database, settings, "dee@example.com")[-1]
    assert last == (
        SubscriberStatus.COMPLAINED,
        SubscriberStatus.ACTIVE,
        ChangeCause.STAFF,
        "staff:kim",
    )


def test_confirming_again_forgets_soft_bounce_points(
    database: Database, settings: Settings
) -> None:
    req = _request(database, "eve@example.com")
    with database.session() as s:
        s.add(SoftBounce(subscriber_id=req.subscriber_id, day=utcnow().date()))
    with database.session() as s:
        subs.confirm(s, settings, req.subscriber_id)
    with database.session() as s:
        record = subs.record_of(s, settings, "eve@example.com")
    assert record is not None and record.soft_bounce_score == 0


def test_a_whole_import_is_recorded_in_a_few_statements(
    database: Database, settings: Settings
) -> None:
    rows = [subs.ImportRow(i, f"p{i}@example.com", None) for i in range(2500)]
    with database.session() as s:
        report = subs.import_rows(
            s, rows, double_opt_in=True, staff="staff", source_label="big.csv", settings=settings
        )
    assert len(report.added) == 2500
    with database.session() as s:
        n = s.scalar(select(func.count()).select_from(SubscriberChange))
    assert n == 2500


def test_search_by_address_or_name_in_pages(database: Database, settings: Settings) -> None:
    rows = [subs.ImportRow(i, f"p{i:02}@example.org", f"Person {i}") for i in range(30)]
    rows.append(subs.ImportRow(99, "odd_100%@example.org", "Zoë Quinn"))
    with database.session() as session:
        subs.import_rows(
            session, rows, double_opt_in=False, staff="t", source_label="t", settings=settings
        )
        everyone = subs.search(session, limit=10)
        assert everyone.total == 31 and len(everyone.subscribers) == 10
        assert everyone.subscribers[0].email == "odd_100%@example.org"  # newest first
        last = subs.search(session, offset=30, limit=10)
        assert [s.email for s in last.subscribers] == ["p00@example.org"]
        assert subs.search(session, "PERSON 2").total == 11  # 2, 20 … 29
        assert subs.search(session, "person 29").total == 1
        assert subs.search(session, "quinn").total == 1
        assert subs.search(session, "_100%").total == 1
        assert subs.search(session, "p_1").total == 0  # _ and % are characters here
        assert subs.search(session, "%").total == 1
        counts = subs.count_by_status(session)
        assert counts[SubscriberStatus.ACTIVE] == 31 and counts[SubscriberStatus.PENDING] == 0
        assert subs.search(session, status=SubscriberStatus.PENDING).total == 0
        sub = subs.find(session, "p01@example.org")
        assert sub is not None and subs.requests_of(session, sub.id) == []
