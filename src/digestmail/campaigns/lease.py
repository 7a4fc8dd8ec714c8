"""The lease: at most one process sends a campaign at a time.

A sender takes the lease with one conditional UPDATE (the campaign is in a status it
may start from, and nobody holds an unexpired lease), renews it between batches on the
ledger's own connection, and from a heartbeat thread while the transport works or a
retry waits. Only the lease holder writes ledger rows. A sender that dies stops
renewing; once ``DIGESTMAIL_SENDER_LEASE`` seconds have passed another may take over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from digestmail.campaigns.errors import CampaignNotFound, LeaseHeld, WrongStatus
from digestmail.campaigns.tables import C, I
from digestmail.db import Database
from digestmail.models import CampaignStatus, utcnow

log = logging.getLogger(__name__)


def owner_id() -> str:
    """Who holds a lease: host and process (what staff need to find it), made unique."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Taken:
    """The campaign as the lease found it."""

    slug: str
    issue_id: int
    # None until the first sender snapshots the audience into the ledger.
    started_at: datetime | None


class Lease:
    def __init__(self, db: Database, campaign_id: int, owner: str, seconds: float) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.owner = owner
        self.length = timedelta(seconds=seconds)

    def take(self, conn: Connection, allowed: Sequence[CampaignStatus], now: datetime) -> Taken:
        """Take the lease in the caller's transaction and mark the campaign ``sending``.

        Raises ``WrongStatus`` if the campaign is not in an ``allowed`` status,
        ``LeaseHeld`` while another sender's lease runs, ``CampaignNotFound``.
        """
        got = conn.execute(
            update(C)
            .where(
                C.c.id == self.campaign_id,
                C.c.status.in_(list(allowed)),
                or_(C.c.lease_owner.is_(None), C.c.lease_expires_at < now),
            )
            .values(
                lease_owner=self.owner,
                lease_expires_at=now + self.length,
                status=CampaignStatus.SENDING,
                error=None,
                error_reason=None,
                error_data=None,
                finished_at=None,
            )
        ).rowcount
        row = conn.execute(
            select(
                C.c.status,
                C.c.lease_owner,
                C.c.lease_expires_at,
                C.c.started_at,
                C.c.issue_id,
                I.c.slug,
            )
            .select_from(C.join(I, I.c.id == C.c.issue_id))
            .where(C.c.id == self.campaign_id)
        ).one_or_none()
        if row is None:
            raise CampaignNotFound(self.campaign_id)
        if got != 1:
            status = CampaignStatus(row.status)
            if status not in allowed:
                raise WrongStatus(self.campaign_id, status)
            raise LeaseHeld(self.campaign_id, row.lease_owner, row.lease_expires_at)
        return Taken(str(row.slug), int(row.issue_id), row.started_at)

    def renew(self, conn: Connection) -> bool:
        """Extend the lease in the caller's transaction; False if it is no longer ours."""
        done = conn.execute(
            update(C)
            .where(C.c.id == self.campaign_id, C.c.lease_owner == self.owner)
            .values(lease_expires_at=utcnow() + self.length)
        ).rowcount
        return done == 1

    def release(self, **values: Any) -> None:
        """Give the lease up (setting ``values`` on the campaign too), if it is still ours."""
        with self.db.engine.begin() as conn:
            conn.execute(
                update(C)
                .where(C.c.id == self.campaign_id, C.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None, **values)
            )


class Heartbeat(threading.Thread):
    """Renews the lease by time while the transport works or a retry waits."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(name=f"lease-{lease.campaign_id}", daemon=True)
        self.lease = lease
        self.stopping = threading.Event()
        self.lost = False

    def run(self) -> None:
        interval = max(0.5, self.lease.length.total_seconds() / 3)
        while not self.stopping.wait(interval):
            try:
                with self.lease.db.engine.begin() as conn:
                    if not self.lease.renew(conn):
                        self.lost = True
                        return
            except Exception:  # a busy database must not kill the heartbeat
                log.warning("could not renew the lease on campaign %s", self.lease.campaign_id)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
