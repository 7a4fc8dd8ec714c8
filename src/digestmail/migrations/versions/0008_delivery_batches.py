"""delivery_batches: a batch in flight is one row, not a thousand rows marked claimed

Rows a sender had claimed when it stopped (state ``claimed``) become ``pending`` again,
held by an open batch of their old number, so that the counts still show them in
flight and the next sender sends them again exactly as before. Rows are no longer
looked up by batch number alone, so its index goes (one index fewer to keep up as each
row is written and answered).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digestmail.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("retry", sa.Boolean(), nullable=False),
        sa.Column("first_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("claimed_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", digestmail.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "recorded",
                "put_back",
                "abandoned",
                name="batchoutcome",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_delivery_batches_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_batches")),
        sa.UniqueConstraint(
            "campaign_id", "number", name=op.f("uq_delivery_batches_campaign_id_number")
        ),
    )
    # Claimed rows: held by a retry batch of their number (a retry batch holds the rows
    # marked with its number), then pending like every row in flight.
    op.execute(
        """
        INSERT INTO delivery_batches
            (campaign_id, number, retry, first_id, last_id, claimed_at)
        SELECT campaign_id, COALESCE(batch, 0), TRUE, MIN(id), MAX(id), MAX(updated_at)
        FROM deliveries WHERE state = 'claimed'
        GROUP BY campaign_id, COALESCE(batch, 0)
        """
    )
    op.execute(
        "UPDATE deliveries SET state = 'pending', batch = COALESCE(batch, 0) "
        "WHERE state = 'claimed'"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_campaign_batch")


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_campaign_batch", ["campaign_id", "batch"], unique=False
        )
    op.execute(
        """
        UPDATE deliveries SET state = 'claimed'
        WHERE state = 'pending' AND EXISTS (
            SELECT 1 FROM delivery_batches b
            WHERE b.campaign_id = deliveries.campaign_id AND b.closed_at IS NULL
              AND deliveries.id BETWEEN b.first_id AND b.last_id
              AND ((b.retry AND deliveries.batch = b.number)
                   OR (NOT b.retry AND deliveries.temp_failures = 0))
        )
        """
    )
    op.drop_table("delivery_batches")
