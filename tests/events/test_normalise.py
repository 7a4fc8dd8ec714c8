"""The webhook payload parser: properties over any input, and the mapping tables."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from digestmail import events
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import NotABatch, parse_sendgrid, sendgrid_event
from digestmail.models import Event, EventKind, utcnow

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_names = st.sampled_from(
    [
        "bounce",
        "dropped",
        "delivered",
        "deferred",
        "open",
        "click",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
        "processed",
        "",
        "BOUNCE",
        "nonsense",
    ]
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "event": st.one_of(_names, _json),
        "email": st.one_of(st.emails(), _json),
        "timestamp": st.one_of(st.integers(0, 2**40), st.floats(), st.text(max_size=12), _json),
        "sg_event_id": st.one_of(st.text(min_size=1, max_size=250), _json),
        "type": st.one_of(st.sampled_from(["bounce", "blocked", "expired"]), _json),
        "reason": st.one_of(
            st.sampled_from(["Bounced Address", "Invalid", "Spam Reporting Address"]), _json
        ),
        "status": _json,
        "campaign_id": st.one_of(st.integers(), st.text(max_size=25), _json),
        "subscriber_id": st.one_of(st.integers(), st.text(max_size=25), _json),
        "delivery_id": st.one_of(st.integers(), st.text(max_size=25), _json),
        "extra": _json,
    },
)
_batch = st.lists(st.one_of(_event, _json), max_size=12)


def _body(items: list[Any]) -> bytes:
    return json.dumps(items, allow_nan=True).encode()


def _finite(items: list[Any]) -> bool:
    try:
        json.dumps(items, allow_nan=False)
    except ValueError:
        return False
    return True


@hsettings(max_examples=200)
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_batch_or_refused_with_a_reason(body: bytes) -> None:
    try:
        batch = parse_sendgrid(body)
    except NotABatch as exc:
        assert exc.reason
        return
    assert len(batch.events) + batch.duplicates + len(batch.refused) >= 0


@hsettings(max_examples=100)
@given(_batch)
def test_every_object_is_accepted_and_everything_else_refused_by_index(items: list[Any]) -> None:
    try:
        batch = parse_sendgrid(_body(items))
    except NotABatch as exc:  # NaN or Infinity somewhere: not JSON
        assert "not a JSON value" in exc.reason and not _finite(items)
        return
    objects = [i for i, item in enumerate(items) if isinstance(item, dict)]
    assert len(batch.events) + batch.duplicates == len(objects)
    assert [r.index for r in batch.refused] == [
        i for i, item in enumerate(items) if not isinstance(item, dict)
    ]
    assert all(r.reason for r in batch.refused)
    ids = [e.event_id for e in batch.events]
    assert len(ids) == len(set(ids)) and all(len(i) <= 200 for i in ids)
    for event in batch.events:
        assert event.occurred_at.tzinfo is not None
        assert event.email is None or len(event.email) <= 320


@hsettings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=_batch)
def test_nothing_accepted_is_lost_when_stored(
    database: Database, settings: Settings, items: list[Any]
) -> None:
    """On both backends: every accepted event is stored (or was already), whatever it holds."""
    try:
        batch = parse_sendgrid(_body(items))
    except NotABatch:
        assert not _finite(items)
        return
    receipt = events.receive(database, settings, batch.events)
    assert receipt.applied
    with database.session() as session:
        stored = set(
            session.scalars(
                select(Event.provider_event_id).where(
                    Event.provider_event_id.in_([e.event_id for e in batch.events])
                )
            )
        )
        assert stored == {e.event_id for e in batch.events}
        assert session.scalar(select(func.count()).where(Event.applied_at.is_(None))) == 0


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"event": "bounce"}, EventKind.BOUNCED),  # no type: a bounce
        ({"event": "bounce", "type": "Blocked"}, EventKind.BLOCKED),
        (
            {"event": "bounce", "type": "bounce", "bounce_classification": "Expired"},
            EventKind.BLOCKED,
        ),
        ({"event": "dropped", "reason": " bounced address "}, EventKind.BOUNCED),
        ({"event": "dropped", "reason": "Invalid SMTPAPI header"}, EventKind.DROPPED),
        ({"event": "dropped"}, EventKind.DROPPED),
        ({"event": "Spamreport"}, EventKind.COMPLAINED),
        ({"event": "something new"}, EventKind.OTHER),
        ({}, EventKind.OTHER),
    ],
)
def test_the_mapping_tables(fields: dict[str, Any], kind: EventKind) -> None:
    assert sendgrid_event({"email": "a@example.com", **fields}, utcnow()).kind is kind


def test_ids_in_custom_args_are_read_as_sendgrid_sends_them() -> None:
    event = sendgrid_event(
        {"campaign_id": "12", "subscriber_id": 34, "delivery_id": "9223372036854775807"}, utcnow()
    )
    assert (event.campaign_id, event.subscriber_id, event.delivery_id) == (
        12,
        34,
        2**63 - 1,
    )
    odd = sendgrid_event(
        {"campaign_id": "1e3", "subscriber_id": True, "delivery_id": "٣"}, utcnow()
    )
    assert (odd.campaign_id, odd.subscriber_id, odd.delivery_id) == (None, None, None)
