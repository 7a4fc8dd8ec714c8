"""events: normalised and tied to deliveries; every status change kept with its cause;
soft-bounce points dated one per day

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digestmail.models

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "soft_bounces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_soft_bounces_event_id_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_soft_bounces_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soft_bounces")),
        sa.UniqueConstraint("subscriber_id", "day", name=op.f("uq_soft_bounces_subscriber_id_day")),
    )
    op.create_table(
        "subscriber_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column(
            "old_status",
            sa.Enum(
                "pending",
                "active",
                "unsubscribed",
                "bounced",
                "complained",
                name="subscriberstatus",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column(
            "new_status",
            sa.Enum(
                "pending",
                "active",
                "unsubscribed",
                "bounced",
                "complained",
                name="subscriberstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "cause",
            sa.Enum(
                "form",
                "email",
                "staff",
                "import",
                "confirmation_link",
                "unsubscribe_link",
                "event",
                name="changecause",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column(
            "event_kind",
            sa.Enum(
                "delivered",
                "deferred",
                "bounced",
                "blocked",
                "dropped",
                "complained",
                "unsubscribed",
                "opened",
                "clicked",
                "other",
                name="eventkind",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=True),
        sa.Column("at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_subscriber_changes_event_id_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriber_changes_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_changes")),
    )
    with op.batch_alter_table("subscriber_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscriber_changes_subscriber_id"), ["subscriber_id"], unique=False
        )

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source",
                sa.Enum(
                    "sendgrid",
                    "reconcile",
                    "bounce_message",
                    "smtp",
                    name="eventsource",
                    native_enum=False,
                    length=16,
                ),
                server_default="sendgrid",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("applied_at", digestmail.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_events_campaign_kind", ["campaign_id", "type"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_delivery_id"), ["delivery_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_events_delivery_id_deliveries"),
            "deliveries",
            ["delivery_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Events stored before kinds were normalised (none are known to exist) keep their
    # payload and become "other", so that reading them never meets an unknown kind.
    op.execute(
        "UPDATE events SET type = 'other' WHERE type NOT IN ('delivered', 'deferred', 'bounced', 'blocked', 'dropped', 'complained', 'unsubscribed', 'opened', 'clicked', 'other')"
    )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_events_delivery_id_deliveries"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_events_delivery_id"))
        batch_op.drop_index("ix_events_campaign_kind")
        batch_op.drop_column("applied_at")
        batch_op.drop_column("reason")
        batch_op.drop_column("delivery_id")
        batch_op.drop_column("source")

    with op.batch_alter_table("subscriber_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_changes_subscriber_id"))

    op.drop_table("subscriber_changes")
    op.drop_table("soft_bounces")
