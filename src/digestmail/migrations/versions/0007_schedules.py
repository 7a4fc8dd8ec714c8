"""schedules: what staff said about when to send, each slot's outcome, APScheduler's jobs

The slot's row is unique per schedule and time, so a second scheduler running by
mistake finds it taken; APScheduler's job table lives in the same database.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digestmail.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_apscheduler_jobs_next_run_time"), ["next_run_time"], unique=False
        )

    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("cadence", "once", name="schedulekind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "paused",
                "done",
                "cancelled",
                name="schedulestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("run_at", digestmail.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("every", sa.Integer(), nullable=True),
        sa.Column(
            "unit",
            sa.Enum("day", "week", name="intervalunit", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column("at_time", sa.Time(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("settled_until", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reminded_for", digestmail.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_schedules_issue_id_issues"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedules_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedules_status"), ["status"], unique=False)

    op.create_table(
        "schedule_occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("slot_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "sent",
                "skipped",
                "missed",
                "cancelled",
                name="occurrenceoutcome",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "reason",
            sa.Enum(
                "no_ready_issue",
                "not_ready",
                "already_sent",
                "unfinished",
                "no_subscribers",
                name="skipreason",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", digestmail.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_schedule_occurrences_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_schedule_occurrences_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_occurrences_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_occurrences")),
        sa.UniqueConstraint("campaign_id", name=op.f("uq_schedule_occurrences_campaign_id")),
        sa.UniqueConstraint(
            "schedule_id", "slot_at", name=op.f("uq_schedule_occurrences_schedule_id_slot_at")
        ),
    )


def downgrade() -> None:
    op.drop_table("schedule_occurrences")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedules_status"))
        batch_op.drop_index(batch_op.f("ix_schedules_issue_id"))

    op.drop_table("schedules")
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apscheduler_jobs_next_run_time"))

    op.drop_table("apscheduler_jobs")
