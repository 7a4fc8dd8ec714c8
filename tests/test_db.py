from __future__ import annotations

import sqlalchemy as sa

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.migrate import upgrade
from digestmail.models import Base


def test_upgrade_is_a_no_op_when_current(database: Database) -> None:
    before, after = upgrade(database.engine)
    assert before == after
    tables = set(sa.inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_migrations_match_the_models(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models changed without a migration: {diff}"


def test_sqlite_pragmas(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.dispose()


def test_migration_0002_keeps_what_0001_stored(database: Database) -> None:
    """Down to 0001 and up again, with rows in between: nothing is lost or unlinked."""
    from alembic import command

    from digestmail.migrate import alembic_config

    def migrate(direction: str, revision: str) -> None:
        cfg = alembic_config(database.url)
        with database.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, direction)(cfg, revision)

    migrate("downgrade", "0001")
    assert not sa.inspect(database.engine).has_table("subscription_requests")
    now = "2026-01-02 03:04:05"
    with database.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, email, email_key, status, source, soft_bounce_score,"
            " created_at, updated_at, consent_text) VALUES (7, 'a@example.com',"
            f" 'a@example.com', 'active', 'form', 0, '{now}', '{now}', 'yes please')"
        )
        conn.exec_driver_sql(
            "INSERT INTO issues (id, slug, publication, volume, title, source, subject,"
            f" preheader, html, text, status, created_at) VALUES (1, 's', 'p', '1', 't', 's',"
            f" 's', '', 'h', 't', 'sent', '{now}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO campaigns (id, issue_id, status, transport, is_test, created_at)"
            f" VALUES (1, 1, 'sent', 'outbox', false, '{now}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO deliveries (id, campaign_id, subscriber_id, email, state, attempts,"
            " temp_failures) VALUES (1, 1, 7, 'a@example.com', 'accepted', 1, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO inbound_messages (sender, subject, action, received_at)"
            f" VALUES ('a@example.com', 'hello', 'none', '{now}')"
        )
    migrate("upgrade", "head")
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT subscriber_id FROM deliveries").scalar() == 7
        assert conn.exec_driver_sql("SELECT consent_text FROM subscribers").scalar() == (
            "yes please"
        )
        assert conn.exec_driver_sql("SELECT sender, subject, raw FROM inbound_messages").one() == (
            "a@example.com",
            "hello",
            None,
        )


def _migrate(database: Database, direction: str, revision: str) -> None:
    from alembic import command

    from digestmail.migrate import alembic_config

    cfg = alembic_config(database.url)
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def test_migration_0005_keeps_the_events_stored_before_it(database: Database) -> None:
    """Down to 0003 and up again with an event stored: it comes back as a SendGrid event,
    waiting for the policy, and the new tables come back empty."""
    _migrate(database, "downgrade", "0003")
    assert not sa.inspect(database.engine).has_table("subscriber_changes")
    with database.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO events (provider_event_id, type, email, payload, occurred_at,"
            " received_at) VALUES ('sg-1', 'bounce', 'a@example.com', '{}',"
            " '2026-01-02 03:04:05', '2026-01-02 03:04:05')"
        )
    _migrate(database, "upgrade", "head")
    with database.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT provider_event_id, type, source, applied_at, delivery_id FROM events"
        ).one()
        assert tuple(row) == ("sg-1", "other", "sendgrid", None, None)
        assert conn.exec_driver_sql("SELECT count(*) FROM subscriber_changes").scalar() == 0


def test_migration_0006_renames_staff_username_to_email_and_back(database: Database) -> None:
    _migrate(database, "downgrade", "0003")
    inspector = sa.inspect(database.engine)
    assert not inspector.has_table("staff_sessions")
    assert "username" in {c["name"] for c in inspector.get_columns("staff")}
    with database.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO staff (id, username, password_hash, created_at)"
            " VALUES (1, 'ann@example.org', 'h', '2026-01-02 03:04:05')"
        )
    _migrate(database, "upgrade", "head")
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT email FROM staff").scalar() == "ann@example.org"
    _migrate(database, "downgrade", "0003")
    _migrate(database, "upgrade", "head")


def test_migration_0008_keeps_rows_in_flight_in_flight(
    database: Database, settings: Settings
) -> None:
    """Rows a sender had claimed before 0008 are held by an open batch after it: still
    counted in flight, and sent again by the next sender; down again, they are claimed."""
    from digestmail import campaigns
    from tests.campaign_helpers import add_subscribers, ledger_states, store_issue

    add_subscribers(database, 5)
    cid = campaigns.create_campaign(database, settings, store_issue(database, settings))
    _migrate(database, "downgrade", "0007")
    with database.engine.begin() as conn:
        for i, (state, batch) in enumerate(
            [("accepted", 1), ("claimed", 2), ("claimed", 2), ("pending", None), ("claimed", 3)]
        ):
            conn.exec_driver_sql(
                "INSERT INTO deliveries (campaign_id, email, state, batch, attempts,"
                " temp_failures, updated_at) VALUES (?, ?, ?, ?, 1, 0, '2026-01-02 03:04:05')"
                if database.url.startswith("sqlite")
                else "INSERT INTO deliveries (campaign_id, email, state, batch, attempts,"
                " temp_failures, updated_at) VALUES (%s, %s, %s, %s, 1, 0,"
                " '2026-01-02 03:04:05+00')",
                (cid, f"r{i}@example.com", state, batch),
            )
    _migrate(database, "upgrade", "head")
    assert ledger_states(database, cid) == {
        "pending": 1,
        "claimed": 3,
        "accepted": 1,
        "rejected": 0,
        "skipped": 0,
    }
    _migrate(database, "downgrade", "0007")
    with database.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, state FROM deliveries ORDER BY email").all()
    assert [tuple(r) for r in rows] == [
        ("r0@example.com", "accepted"),
        ("r1@example.com", "claimed"),
        ("r2@example.com", "claimed"),
        ("r3@example.com", "pending"),
        ("r4@example.com", "claimed"),
    ]
    _migrate(database, "upgrade", "head")
