"""The lease: at most one process sends a campaign at a time.

A sender takes the lease with one conditional UPDATE (the campaign is in a status it
may start from, and nobody holds an unexpired lease), renews it between batches on the
ledger's own connection, and from a heartbeat thread while the transport works or a
retry waits. Only the lease holder writes ledger rows. A sender that dies stops
renewing; once ``DIGESTMAIL_SENDER_LEASE`` seconds have passed another may take over.

Sooner when the holder is provably gone: the lease names the holder's host and
process (with the process's start time, so that a new process given the same id by
the system is not mistaken for it), and a sender on that same host that finds no such
process takes the lease at once instead of waiting for it to run out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, or_, select, update

from digestmail.campaigns.errors import CampaignNotFound, LeaseHeld, WrongStatus
from digestmail.campaigns.tables import C, I
from digestmail.db import Database
from digestmail.models import CampaignStatus, utcnow

log = logging.getLogger(__name__)


# host:pid:start:machine:tag -- the host and process first, as staff read them.
_OWNER = re.compile(
    r"(?P<host>.+):(?P<pid>\d+):(?P<start>\d+):(?P<machine>[0-9a-f]{8}):(?P<tag>[0-9a-f]{6})"
)
_PROC = Path("/proc")


def _host() -> str:
    # Short enough that the whole owner id fits its column (100).
    return socket.gethostname()[:48]


@lru_cache(maxsize=1)
def _machine() -> str:
    """This boot of this machine, as seen from this process's PID namespace.

    Two containers may share a host name while each has its own process ids; only a
    process in the same namespace of the same boot can tell whether a pid is alive.
    """
    parts = []
    with contextlib.suppress(OSError):
        parts.append((_PROC / "sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink(_PROC / "self/ns/pid"))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


def _started(pid: int) -> int | None:
    """When the process started (clock ticks since boot), None if there is no such
    process (or it is a zombie, dead but not yet reaped); 0 where /proc is missing."""
    if not _PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ... starttime(22nd field) ...": comm may hold spaces and ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def owner_id() -> str:
    """Who holds a lease: host and process (what staff need to find it), the process's
    start time and this machine's boot (to tell it apart from a later process with the
    same pid), made unique."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_started(pid) or 0}:{_machine()}:{uuid.uuid4().hex[:6]}"


def holder_gone(owner: str) -> bool:
    """True only when ``owner`` was a process on this host, as this process sees it, that
    no longer runs. Anything else (another host, another container, an id written by an
    older version, a process that is still there) is not known to be gone."""
    found = _OWNER.fullmatch(owner)
    if found is None or found["host"] != _host() or found["machine"] != _machine():
        return False
    started = _started(int(found["pid"]))
    return started is None or started != int(found["start"])


@dataclass(frozen=True)
class Taken:
    """The campaign as the lease found it."""

    slug: str
    issue_id: int
    # None until the first sender snapshots the audience into the ledger.
    started_at: datetime | None
    # The holder whose lease was taken over because its process is gone, if any.
    took_over_from: str | None = None


class Lease:
    def __init__(self, db: Database, campaign_id: int, owner: str, seconds: float) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.owner = owner
        self.length = timedelta(seconds=seconds)

    def take(self, conn: Connection, allowed: Sequence[CampaignStatus], now: datetime) -> Taken:
        """Take the lease in the caller's transaction and mark the campaign ``sending``.

        Raises ``WrongStatus`` if the campaign is not in an ``allowed`` status,
        ``LeaseHeld`` while another live sender's lease runs, ``CampaignNotFound``. A
        lease whose holder is provably gone (``holder_gone``) is taken at once.
        """
        got = self._take(
            conn, allowed, now, or_(C.c.lease_owner.is_(None), C.c.lease_expires_at < now)
        )
        row = self._row(conn)
        if row is None:
            raise CampaignNotFound(self.campaign_id)
        dead = row.lease_owner
        if got != 1 and CampaignStatus(row.status) in allowed and dead and holder_gone(dead):
            # Compare-and-set on the dead holder's name: of two senders noticing at
            # once, one takes it.
            if self._take(conn, allowed, now, C.c.lease_owner == dead) == 1:
                log.warning(
                    "campaign %s: its sender %s is no longer running; taking over",
                    self.campaign_id,
                    dead,
                )
                return Taken(str(row.slug), int(row.issue_id), row.started_at, dead)
            row = self._row(conn)
            assert row is not None
        if got != 1:
            status = CampaignStatus(row.status)
            if status not in allowed:
                raise WrongStatus(self.campaign_id, status)
            raise LeaseHeld(self.campaign_id, row.lease_owner, row.lease_expires_at)
        return Taken(str(row.slug), int(row.issue_id), row.started_at)

    def _take(
        self,
        conn: Connection,
        allowed: Sequence[CampaignStatus],
        now: datetime,
        free: ColumnElement[bool],
    ) -> int:
        return int(
            conn.execute(
                update(C)
                .where(C.c.id == self.campaign_id, C.c.status.in_(list(allowed)), free)
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
        )

    def _row(self, conn: Connection) -> Row[*tuple[Any, ...]] | None:
        return conn.execute(
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
