"""Shared by the campaign tests: a list, an issue, the outbox read back, wrapped transports."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import cast

from sqlalchemy import Table, insert, select

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import add_issue
from digestmail.models import Subscriber, utcnow
from digestmail.transports.base import BatchResult, MessageTemplate, Recipient
from digestmail.transports.outbox import OutboxTransport

ISSUE_FILE = Path(__file__).parent / "fixtures" / "campaigns" / "issue.md"
SUBSCRIBERS = cast(Table, Subscriber.__table__)


def add_subscribers(
    db: Database, n: int, *, status: str = "active", start: int = 0, prefix: str = "user"
) -> None:
    """``n`` subscribers named ``{prefix}{i}@example.com``, in one bulk insert."""
    now = utcnow()
    rows = [
        {
            "email": f"{prefix}{i}@example.com",
            "email_key": f"{prefix}{i}@example.com",
            "name": f"Reader {i}",
            "status": status,
            "source": "import",
            "soft_bounce_score": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(start, start + n)
    ]
    with db.engine.begin() as conn:
        conn.execute(insert(SUBSCRIBERS), rows)


def store_issue(db: Database, settings: Settings) -> str:
    return add_issue(db, settings, ISSUE_FILE).slug


def outbox_messages(outbox: Path) -> list[EmailMessage]:
    return [
        cast(EmailMessage, message_from_bytes(p.read_bytes(), policy=policy.default))
        for p in sorted(outbox.glob("*.eml"))
    ]


def outbox_counts(outbox: Path) -> Counter[str]:
    """How many messages each address received (reads only the To header)."""
    counts: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        with path.open("rb") as fh:
            for line in fh:
                if line.startswith(b"To: "):
                    counts[parseaddr(line[4:].strip().decode())[1]] += 1
                    break
    return counts


Hook = Callable[[int, Sequence[Recipient]], None]


class HookedOutbox(OutboxTransport):
    """The outbox transport, with a hook run before each batch (numbered from 1).

    Where a test must act *while* a batch is in flight (pause, unsubscribe, a provider
    failure), it wraps the real outbox transport: the campaign code is never faked.
    """

    def __init__(self, settings: Settings, hook: Hook | None = None) -> None:
        super().__init__(settings)
        self.hook = hook
        self.calls = 0
        # Batches are sent from several threads at once: each takes its number under the
        # lock, so no number is skipped or given twice.
        self._counting = threading.Lock()

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        with self._counting:
            self.calls += 1
            number = self.calls
        if self.hook:
            self.hook(number, recipients)
        return super().send_batch(template, recipients)


class FailingOutbox(HookedOutbox):
    """Raises the given errors, one per call, before delivering normally."""

    def __init__(self, settings: Settings, errors: Sequence[BaseException], at: int = 2) -> None:
        super().__init__(settings)
        self.errors = list(errors)
        self.at = at

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        with self._counting:
            error = self.errors.pop(0) if self.calls + 1 >= self.at and self.errors else None
            if error is not None:
                self.calls += 1
        if error is not None:
            raise error
        return super().send_batch(template, recipients)


def ledger_states(db: Database, cid: int) -> dict[str, int]:
    from digestmail import campaigns

    return campaigns.campaign_info(db, cid).counts


def sent_campaign(db: Database, settings: Settings, n: int, *, prefix: str = "user") -> int:
    """``n`` active subscribers sent one issue through the outbox; the campaign's id."""
    from digestmail import campaigns

    add_subscribers(db, n, prefix=prefix)
    cid = campaigns.create_campaign(db, settings, store_issue(db, settings))
    campaigns.run_campaign(db, settings, cid)
    return cid


def deliveries(db: Database, campaign_id: int) -> dict[str, tuple[int, int]]:
    """email -> (delivery id, subscriber id) of a campaign's ledger."""
    from digestmail.models import Delivery

    with db.session() as session:
        rows = session.execute(
            select(Delivery.email, Delivery.id, Delivery.subscriber_id).where(
                Delivery.campaign_id == campaign_id
            )
        ).all()
    return {r.email: (r.id, r.subscriber_id) for r in rows}


def store_volume(
    db: Database, settings: Settings, folder: Path, volume: str, day: str, *, ready: bool = False
) -> str:
    """Another issue like ``ISSUE_FILE``, with its own volume and date; returns its slug."""
    text = ISSUE_FILE.read_text(encoding="utf-8")
    text = text.replace('volume: "9.1"', f'volume: "{volume}"').replace(
        "date: 2024-03-01", f"date: {day}"
    )
    path = folder / f"issue-{volume}.md"
    path.write_text(text, encoding="utf-8")
    return add_issue(db, settings, path, ready=ready).slug
