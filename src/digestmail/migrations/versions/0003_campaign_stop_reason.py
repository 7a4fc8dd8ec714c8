"""campaigns: why a sender stopped, as data beside the error's detail

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASONS = (
    "refused",
    "uncertain",
    "wait_too_long",
    "kept_failing",
    "unbuildable",
    "interrupted",
    "unexpected",
)


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "error_reason",
                sa.Enum(*_REASONS, name="stopreason", native_enum=False, length=16),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("error_data", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("error_data")
        batch_op.drop_column("error_reason")
