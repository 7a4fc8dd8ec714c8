"""inbound raw posts and subscription requests

Inbound mail is stored as the raw post (bytes) before it is parsed, so its sender is
unknown until then. Subscription requests get a table of their own, so that a request
never rewrites an existing subscriber's consent record.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:17:20.452179
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digestmail.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscription_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column(
            "source",
            sa.Enum(
                "form",
                "email",
                "staff",
                "import",
                name="subscribersource",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("requested_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", digestmail.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscription_requests_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_requests")),
    )
    with op.batch_alter_table("subscription_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscription_requests_subscriber_id"), ["subscriber_id"], unique=False
        )

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_type", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("problem", sa.Text(), nullable=True))
        batch_op.alter_column("sender", existing_type=sa.VARCHAR(length=320), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE inbound_messages SET sender = '' WHERE sender IS NULL")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.alter_column("sender", existing_type=sa.VARCHAR(length=320), nullable=False)
        batch_op.drop_column("problem")
        batch_op.drop_column("raw")
        batch_op.drop_column("content_type")

    with op.batch_alter_table("subscription_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_requests_subscriber_id"))

    op.drop_table("subscription_requests")
