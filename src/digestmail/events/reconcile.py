"""SendGrid's suppression lists read back, for events lost while the webhook was down.

SendGrid keeps its own lists of addresses it will not mail: bounces, blocks, spam
reports, invalid emails and (global) unsubscribes. Each entry becomes a normalised
event with an id made of the list, the address and the entry's time, so reading the
lists twice stores nothing new and changes nothing twice. The same policy as for the
webhook applies, including its rule that an entry from before a subscriber's latest
confirmation changes nothing (they proved the address since).
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import python_http_client.exceptions
import sendgrid
from sqlalchemy import select

from digestmail import events
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import (
    Normalised,
    address_id,
    clean_text,
    storable,
    unix_time,
)
from digestmail.models import (
    Event,
    EventKind,
    EventSource,
    Subscriber,
    SubscriberStatus,
    fit,
    utcnow,
)
from digestmail.transports.sendgrid import describe_errors

# SendGrid's list (its API path under /v3/suppression/) -> what an entry on it means.
SUPPRESSION_LISTS: Mapping[str, EventKind] = {
    "bounces": EventKind.BOUNCED,
    "blocks": EventKind.BLOCKED,
    "spam_reports": EventKind.COMPLAINED,
    "invalid_emails": EventKind.BOUNCED,
    "unsubscribes": EventKind.UNSUBSCRIBED,
}
PAGE = 500
# A list longer than this many pages is read no further (and the report says so).
MAX_PAGES = 2000


class ReconcileError(Exception):
    """SendGrid could not be read; ``status`` is its HTTP status when it answered."""

    def __init__(self, list_name: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{list_name}: {reason}")
        self.list_name = list_name
        self.reason = reason
        self.status = status


class NoApiKey(ReconcileError):
    def __init__(self) -> None:
        super().__init__("", "no SendGrid API key is configured")


@dataclass(frozen=True)
class Changed:
    email: str
    status: SubscriberStatus
    list_name: str


@dataclass
class ReconcileReport:
    entries: dict[str, int] = field(default_factory=dict)  # read per list
    stored: int = 0  # entries not seen before
    changed: list[Changed] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)  # lists cut at MAX_PAGES


def reconcile(
    db: Database, settings: Settings, *, since: datetime | None = None
) -> ReconcileReport:
    """Read every suppression list (from ``since``, or all of it) and apply it."""
    if settings.sendgrid_api_key is None:
        raise NoApiKey()
    client = sendgrid.SendGridAPIClient(
        api_key=settings.sendgrid_api_key.get_secret_value(), host=settings.sendgrid_api_host
    )
    now = utcnow()
    report = ReconcileReport()
    found: list[Normalised] = []
    list_of: dict[str, str] = {}
    for name, kind in SUPPRESSION_LISTS.items():
        entries = _read_list(client, settings, name, since, now, report)
        report.entries[name] = len(entries)
        for entry in entries:
            event = _event(settings, name, kind, entry, now)
            if event is not None:
                found.append(event)
                list_of[event.event_id] = name
    receipt = events.receive(db, settings, found)
    report.stored = receipt.stored
    if receipt.changes:
        with db.session() as session:
            emails = dict(
                (row.id, row.email)
                for row in session.execute(
                    select(Subscriber.id, Subscriber.email).where(
                        Subscriber.id.in_({c.subscriber_id for c in receipt.changes})
                    )
                )
            )
            causes = dict(
                (row.id, row.provider_event_id)
                for row in session.execute(
                    select(Event.id, Event.provider_event_id).where(
                        Event.id.in_({c.event_id for c in receipt.changes if c.event_id})
                    )
                )
            )
        for change in receipt.changes:
            pid = causes.get(change.event_id or 0, "")
            report.changed.append(
                Changed(
                    emails.get(change.subscriber_id, "?"),
                    change.status,
                    list_of.get(pid, ""),
                )
            )
    return report


def _read_list(
    client: Any,
    settings: Settings,
    name: str,
    since: datetime | None,
    now: datetime,
    report: ReconcileReport,
) -> list[dict[str, Any]]:
    endpoint = getattr(client.client.suppression, name)
    entries: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        params: dict[str, int] = {
            "limit": PAGE,
            "offset": page * PAGE,
            "end_time": int(now.timestamp()),
        }
        if since is not None:
            params["start_time"] = int(since.timestamp())
        try:
            response = endpoint.get(query_params=params, timeout=settings.sendgrid_timeout)
        except python_http_client.exceptions.HTTPError as exc:
            raise ReconcileError(name, describe_errors(exc.body), exc.status_code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ReconcileError(name, f"SendGrid could not be reached: {exc}") from None
        try:
            items = json.loads(response.body or b"[]")
        except ValueError:
            raise ReconcileError(
                name, "SendGrid's answer is not JSON", response.status_code
            ) from None
        if not isinstance(items, list):
            raise ReconcileError(name, "SendGrid's answer is not a list", response.status_code)
        entries.extend(item for item in items if isinstance(item, dict))
        if len(items) < PAGE:
            return entries
    report.truncated.append(name)
    return entries


def _event(
    settings: Settings, name: str, kind: EventKind, entry: dict[str, Any], now: datetime
) -> Normalised | None:
    email = entry.get("email")
    if not isinstance(email, str) or "@" not in email:
        return None
    email = clean_text(email.strip())
    created = unix_time(entry.get("created"))
    reason = " ".join(
        clean_text(str(entry[k]))
        for k in ("status", "reason")
        if isinstance(entry.get(k), str | int)
    )
    stamp = int(created.timestamp()) if created else 0
    return Normalised(
        event_id=f"reconcile:{name}:{stamp}:{address_id(settings, email)}",
        kind=kind,
        source=EventSource.RECONCILE,
        email=fit(Event.email, email),
        occurred_at=created or now,
        reason=reason[:2000] or None,
        payload=storable({"list": name, **entry}),
    )
