"""The data model: the database is the single source of truth.

Every long-running job (a campaign, a scheduled send) keeps its progress here, so a
process may die at any line and the next one continues from what these rows say.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, QueryableAttribute, mapped_column, relationship

from digestmail.content import model as issue_limits

# The largest id an ``Integer`` primary key holds on PostgreSQL (SQLite's is larger):
# ids that arrive from outside (signed links) are checked against it before a lookup.
MAX_ID = 2**31 - 1

# The largest id an ``Integer`` primary key holds on every backend (PostgreSQL's int4):
# a number typed by a person beyond it names nothing, and must be answered as such
# rather than overflow the driver.
ID_MAX = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC, read back as aware UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


def max_length(column: QueryableAttribute[Any]) -> int:
    """The declared size of a ``String`` column: the one home of every length limit.

    PostgreSQL refuses a longer value (SQLite would keep it), so whatever checks
    outside input against a limit reads it from here instead of repeating the number.
    """
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} has no declared length")
    return length


def fit(column: QueryableAttribute[Any], value: str) -> str:
    """``value`` cut to the size of its column."""
    return value[: max_length(column)]


def _enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    # Stored as plain strings: portable across SQLite and PostgreSQL, and adding a
    # value later needs no ALTER TYPE.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
    )


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class SubscriberSource(enum.StrEnum):
    FORM = "form"
    EMAIL = "email"
    STAFF = "staff"
    IMPORT = "import"


class Subscriber(Base):
    __tablename__ = "subscribers"
    # Ids are in signed links that never expire: SQLite must not hand an erased
    # subscriber's id to somebody new.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(primary_key=True)
    # As the subscriber typed it (the domain lower-cased by email-validator).
    email: Mapped[str] = mapped_column(String(320))
    # Case-folded form: uniqueness is case-insensitive on every backend.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[SubscriberStatus] = mapped_column(
        _enum(SubscriberStatus), default=SubscriberStatus.PENDING, index=True
    )
    source: Mapped[SubscriberSource] = mapped_column(_enum(SubscriberSource))
    # Consent record: when, from where (IP) or by whom (staff), and the wording shown.
    consent_at: Mapped[datetime | None]
    consent_ip: Mapped[str | None] = mapped_column(String(64))
    consent_by: Mapped[str | None] = mapped_column(String(200))
    consent_text: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    soft_bounce_score: Mapped[int] = mapped_column(default=0)
    soft_bounce_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status.value}>"


class SubscriptionRequest(Base):
    """One request to subscribe (the form, an email, staff), kept apart from the subscriber.

    Anybody can type anybody's address, so a request changes nothing about an existing
    subscriber. Its details (name, source, where from, the wording shown, when) become
    the subscriber's consent record only when the confirmation link it led to is
    followed -- or at once when staff vouch for the person. Confirmed requests stay as
    the history of that person's consents.
    """

    __tablename__ = "subscription_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[SubscriberSource] = mapped_column(_enum(SubscriberSource))
    ip: Mapped[str | None] = mapped_column(String(64))
    by: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]


class ErasedAddress(Base):
    """A hash of an address erased on request, so a later import cannot resurrect it."""

    __tablename__ = "erased_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class IssueStatus(enum.StrEnum):
    DRAFT = "draft"
    READY = "ready"
    SENT = "sent"


class Issue(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(issue_limits.SLUG_MAX), unique=True)
    publication: Mapped[str] = mapped_column(String(issue_limits.PUBLICATION_MAX))
    volume: Mapped[str] = mapped_column(String(issue_limits.VOLUME_MAX))
    title: Mapped[str] = mapped_column(String(issue_limits.TITLE_MAX))
    issue_date: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(issue_limits.SUBJECT_MAX))
    preheader: Mapped[str] = mapped_column(String(issue_limits.PREHEADER_MAX), default="")
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[IssueStatus] = mapped_column(_enum(IssueStatus), default=IssueStatus.DRAFT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    campaigns: Mapped[list[Campaign]] = relationship(back_populates="issue")


class CampaignStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class StopReason(enum.StrEnum):
    """Why a sender stopped a campaign short of ``sent``, kept beside the error's detail.

    Data, not words: the CLI and the admin each say what it means and what to do next.
    """

    REFUSED = "refused"  # the transport refused the batch; trying again cannot help
    UNCERTAIN = "uncertain"  # the transport could not say whether it took the batch
    WAIT_TOO_LONG = "wait_too_long"  # the provider asked for a longer pause (Retry-After)
    KEPT_FAILING = "kept_failing"  # temporary failures outlasted every retry
    UNBUILDABLE = "unbuildable"  # the issue cannot become a valid message
    INTERRUPTED = "interrupted"  # the operator stopped the sender
    UNEXPECTED = "unexpected"  # an error nobody planned for (a bug); the detail names it
    NO_AUDIENCE = "no_audience"  # nobody was active at the start: never sent to nobody


class Campaign(Base):
    """One sending of one issue. Progress lives in its Delivery rows, not in memory."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="RESTRICT"), index=True)
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus), default=CampaignStatus.SCHEDULED, index=True
    )
    transport: Mapped[str] = mapped_column(String(16))
    is_test: Mapped[bool] = mapped_column(default=False)
    scheduled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Lease held by the live sender: at most one process sends a campaign at a time.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    # Why the sender stopped (``error_reason``), the provider's or the check's own words
    # (``error``), and the facts the reason needs to be explained (``error_data``: the
    # batch in flight, the wait asked for, the tries made).
    error_reason: Mapped[StopReason | None] = mapped_column(_enum(StopReason))
    error: Mapped[str | None] = mapped_column(Text)
    error_data: Mapped[dict[str, Any] | None]

    issue: Mapped[Issue] = relationship(back_populates="campaigns")


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    # In flight: a row of a batch handed to the transport and not yet answered. Rows are
    # not stored with it (a ``DeliveryBatch`` holds them, see ``campaigns.batches``):
    # it names them in the counts, beside the rows still to be claimed.
    CLAIMED = "claimed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class Delivery(Base):
    """The ledger: one row per campaign and recipient, written before anything is sent."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        Index("ix_deliveries_campaign_state", "campaign_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState), default=DeliveryState.PENDING
    )
    batch: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    # How many of the attempts ended in a temporary failure (nothing was delivered):
    # attempts beyond these may have reached the recipient, so they count as resends.
    temp_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None]


class BatchOutcome(enum.StrEnum):
    RECORDED = "recorded"  # the transport answered and each row was moved
    PUT_BACK = "put_back"  # nothing of it was sent: its rows are pending as before
    ABANDONED = "abandoned"  # its sender stopped before an answer: sent again


class DeliveryBatch(Base):
    """One hand-over of recipients to the transport: claimed before, closed after.

    A batch holds its rows without writing them (one row here instead of a thousand
    updates): a first try holds the ``pending`` rows of its id range not yet tried, a
    retry the ``pending`` rows marked with its number (``campaigns.batches``). While it
    is open its rows are in flight; a sender that dies leaves it open, and the next one
    closes it as abandoned and sends its rows again.
    """

    __tablename__ = "delivery_batches"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int]
    retry: Mapped[bool]
    first_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    claimed_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    outcome: Mapped[BatchOutcome | None] = mapped_column(_enum(BatchOutcome))


class EventKind(enum.StrEnum):
    """What happened to a message, in our words: every source's events map onto these.

    SendGrid's event names, bounce types and drop reasons, bounce messages (DSNs) and
    refusals while sending by SMTP are all normalised to one of these before any
    policy looks at them (``digestmail.events``).
    """

    DELIVERED = "delivered"
    DEFERRED = "deferred"  # a temporary failure; the sender is still trying
    BOUNCED = "bounced"  # refused for good: the address does not work
    BLOCKED = "blocked"  # refused after trying (a soft bounce): the address may come back
    DROPPED = "dropped"  # not sent, for a reason that says nothing about the address
    COMPLAINED = "complained"  # marked as spam
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    OTHER = "other"  # kept for the record, means nothing to the list (e.g. "processed")


class EventSource(enum.StrEnum):
    SENDGRID = "sendgrid"  # the Event Webhook
    RECONCILE = "reconcile"  # SendGrid's suppression lists, read back
    BOUNCE_MESSAGE = "bounce_message"  # a bounce message (DSN or another format)
    SMTP = "smtp"  # a refusal while sending by SMTP


class Event(Base):
    """A provider event, normalised; the unique provider id makes webhook replays no-ops.

    Stored before any policy is applied (``applied_at`` is set once it has been), with
    the event as it arrived in ``payload``.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_campaign_kind", "campaign_id", "type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[EventKind] = mapped_column(
        "type",
        _enum(EventKind, 32),
        index=True,
    )
    source: Mapped[EventSource] = mapped_column(
        _enum(EventSource), default=EventSource.SENDGRID, server_default="sendgrid"
    )
    email: Mapped[str | None] = mapped_column(String(320))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("deliveries.id", ondelete="SET NULL"),
        index=True,
    )
    # The provider's or the remote server's own words (bounce reason, drop reason).
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None]


class ChangeCause(enum.StrEnum):
    """Why a subscriber's status changed (with ``SubscriberChange.event_id`` for events)."""

    FORM = "form"  # a subscription request created the row (the form)
    EMAIL = "email"  # … an email to the contact address
    STAFF = "staff"  # staff added, vouched for or removed them
    IMPORT = "import"  # a staff import
    CONFIRMATION_LINK = "confirmation_link"  # they followed their confirmation link
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # the unsubscribe page or one-click
    EVENT = "event"  # a mail event: bounce, complaint, unsubscribe at the provider


class SubscriberChange(Base):
    """One change of a subscriber's status and its cause: the list's history of a person.

    Written by ``subscribers`` together with the change itself, never separately.
    ``old_status`` is empty for the change that created the subscriber.
    """

    __tablename__ = "subscriber_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    old_status: Mapped[SubscriberStatus | None] = mapped_column(_enum(SubscriberStatus))
    new_status: Mapped[SubscriberStatus] = mapped_column(_enum(SubscriberStatus))
    cause: Mapped[ChangeCause] = mapped_column(_enum(ChangeCause, 32))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    event_kind: Mapped[EventKind | None] = mapped_column(_enum(EventKind, 32))
    # The reason in words as it came (a bounce's text, the drop reason), or a note.
    detail: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str | None] = mapped_column(String(200))  # staff, for staff's changes
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SoftBounce(Base):
    """One soft-bounce point: at most one per subscriber and day, dated so that it ages."""

    __tablename__ = "soft_bounces"
    __table_args__ = (UniqueConstraint("subscriber_id", "day"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))


class InboundMessage(Base):
    """Mail to the contact address (SendGrid Inbound Parse): every message is kept for staff.

    The post is stored exactly as it arrived (``raw``, bytes: PostgreSQL text cannot
    hold NUL) before anything reads it; the other columns are what the parser made of
    it, filled in afterwards, and ``problem`` says what it could not read. Old rows,
    from before raw posts were kept, have no ``raw``.
    """

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_type: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    sender: Mapped[str | None] = mapped_column(String(320))
    recipient: Mapped[str | None] = mapped_column(String(1000))
    subject: Mapped[str | None] = mapped_column(String(1000))
    text: Mapped[str | None] = mapped_column(Text)
    problem: Mapped[str | None] = mapped_column(Text)
    # What the system did with it: subscribe, unsubscribe, or none (left for staff).
    action: Mapped[str] = mapped_column(String(16), default="none")
    handled_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Staff(Base):
    """A person who runs the digest in the admin: signs in with an email and a password."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The address's lookup key (``subscribers.email_key``): one account per mailbox.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffSession(Base):
    """A signed-in browser. The cookie holds the token; only its SHA-256 is stored here,
    so a copy of the database opens no session. Deleting the row signs the browser out
    (logout, a removed account, a changed password)."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ScheduleKind(enum.StrEnum):
    CADENCE = "cadence"  # every N weeks (or days) at a wall-clock time: the oldest ready issue
    ONCE = "once"  # one issue at one time


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # a one-off whose time has come and gone (its occurrence says how)
    CANCELLED = "cancelled"


class IntervalUnit(enum.StrEnum):
    DAY = "day"
    WEEK = "week"


class Schedule(Base):
    """What staff said about when to send, written by the CLI and the admin.

    The scheduler process brings its APScheduler jobs in line with these rows (``version``
    changes with every edit); the rows, not the jobs, are the truth.
    """

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ScheduleKind] = mapped_column(_enum(ScheduleKind))
    status: Mapped[ScheduleStatus] = mapped_column(
        _enum(ScheduleStatus), default=ScheduleStatus.ACTIVE, index=True
    )
    # One-off: the issue and the moment.
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="RESTRICT"), index=True
    )
    run_at: Mapped[datetime | None]
    # Cadence: every ``every`` units from ``start_date`` (the first slot's local date) at
    # ``at_time`` on the wall clock of ``timezone``.
    every: Mapped[int | None]
    unit: Mapped[IntervalUnit | None] = mapped_column(_enum(IntervalUnit))
    at_time: Mapped[time | None] = mapped_column(Time())
    start_date: Mapped[date | None] = mapped_column(Date)
    # The zone staff gave (a one-off is shown in it; a cadence keeps its wall-clock time).
    timezone: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    # Every slot up to this moment has been dealt with (sent, skipped, missed, or passed
    # while paused): what is missed is looked for after it only.
    settled_until: Mapped[datetime]
    # The slot staff were last reminded about (no issue ready the day before).
    reminded_for: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OccurrenceOutcome(enum.StrEnum):
    SENT = "sent"  # handed to a campaign (its status says how far it got)
    SKIPPED = "skipped"  # nothing to send, or nobody to send to (``reason``)
    MISSED = "missed"  # the scheduler was not running, and the grace ran out
    CANCELLED = "cancelled"  # staff skipped this one occurrence ahead of time


class SkipReason(enum.StrEnum):
    NO_READY_ISSUE = "no_ready_issue"  # a cadence found no issue ready and unsent
    NOT_READY = "not_ready"  # a one-off's issue was a draft again
    ALREADY_SENT = "already_sent"  # a one-off's issue had been sent meanwhile
    UNFINISHED = "unfinished"  # a campaign of the issue was still scheduled, sending or paused
    NO_SUBSCRIBERS = "no_subscribers"  # nobody was active


class Occurrence(Base):
    """One slot of a schedule and what became of it.

    Unique per schedule and slot: the row (with its campaign) is written in the same
    transaction as the campaign, so a second scheduler running by mistake finds the slot
    taken and stands down.
    """

    __tablename__ = "schedule_occurrences"
    __table_args__ = (UniqueConstraint("schedule_id", "slot_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    slot_at: Mapped[datetime]
    outcome: Mapped[OccurrenceOutcome] = mapped_column(_enum(OccurrenceOutcome))
    reason: Mapped[SkipReason | None] = mapped_column(_enum(SkipReason))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), unique=True
    )
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


# APScheduler's own job store (``SQLAlchemyJobStore``), declared here so that the
# migrations create it and the schema stays whole; APScheduler reads and writes it.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
