"""staff: sign in by email; signed-in browsers kept as sessions

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digestmail.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No version before this one could create a staff account: the table is empty.
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint("uq_staff_username", type_="unique")
        batch_op.alter_column(
            "username",
            new_column_name="email",
            existing_type=sa.String(length=100),
            type_=sa.String(length=320),
            existing_nullable=False,
        )
    # A second pass: SQLite's table rebuild drops a constraint added in the same pass
    # as the column's new name.
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_staff_email"), ["email"])
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("created_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff.id"],
            name=op.f("fk_staff_sessions_staff_id_staff"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_sessions_token_hash")),
    )
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_sessions_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_sessions_staff_id"))
    op.drop_table("staff_sessions")
    # Accounts whose address does not fit the old column cannot go back: they are removed.
    op.execute(sa.text("DELETE FROM staff WHERE length(email) > 100"))
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint("uq_staff_email", type_="unique")
        batch_op.alter_column(
            "email",
            new_column_name="username",
            existing_type=sa.String(length=320),
            type_=sa.String(length=100),
            existing_nullable=False,
        )
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_staff_username"), ["username"])
