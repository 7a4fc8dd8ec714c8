"""``digestmail events fetch`` and ``events reconcile`` as staff run them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from typer.testing import CliRunner

from digestmail import bounces
from digestmail.cli import app
from digestmail.config import Settings, reset_settings_cache
from digestmail.db import Database
from tests.campaign_helpers import add_subscribers, deliveries, sent_campaign
from tests.fakes.sendgrid import FakeSendGrid
from tests.imapserver import ImapServer
from tests.test_bounces import sample

_runner = CliRunner()


class runner:
    """Each command reads the environment afresh, as a new process would."""

    @staticmethod
    def invoke(*args: Any, **kwargs: Any) -> Any:
        reset_settings_cache()
        return _runner.invoke(*args, **kwargs)


def test_reconcile_prints_what_it_changed_and_nothing_the_second_time(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_subscribers(database, 3)
    with FakeSendGrid(api_key="SG.cli") as fake:
        fake.suppressions["spam_reports"] = [
            {"created": int(time.time()) - 60, "email": "user1@example.com"}
        ]
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.cli")
        monkeypatch.setenv("DIGESTMAIL_SENDGRID_API_HOST", fake.url)
        first = runner.invoke(app, ["events", "reconcile"])
        second = runner.invoke(app, ["events", "reconcile", "--since", "2020-01-01"])
        bad = runner.invoke(app, ["events", "reconcile", "--since", "last tuesday"])
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")
        refused = runner.invoke(app, ["events", "reconcile"])
    assert first.exit_code == 0, first.output
    assert "user1@example.com: now complained (SendGrid's spam reports list)" in first.output
    assert second.exit_code == 0 and "No subscriber changed status." in second.output
    assert bad.exit_code == 2 and "expected a date" in bad.output
    assert refused.exit_code == 1 and "HTTP 401" in refused.output
    assert "Traceback" not in refused.output


def test_fetch_reads_the_mailbox_and_says_what_happened(
    database: Database, settings: Settings, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings.model_copy(update={"bounce_address": "bounces@bounce.example.org"})
    cid = sent_campaign(database, s, 2)
    path = bounces.return_path(s, deliveries(database, cid)["user0@example.com"][0])
    assert path is not None
    imap_server.deliver(sample("dsn-hard.eml", path, "user0@example.com"), "1.bounce")
    monkeypatch.setenv("DIGESTMAIL_BOUNCE_ADDRESS", "bounces@bounce.example.org")
    nothing = runner.invoke(app, ["events", "fetch"])
    assert nothing.exit_code == 0 and "No bounce mailbox is configured" in nothing.output
    monkeypatch.setenv("DIGESTMAIL_BOUNCE_IMAP_URL", imap_server.url())
    r = runner.invoke(app, ["events", "fetch"])
    assert r.exit_code == 0, r.output
    assert "Read 1 message(s), 1 of them bounce reports" in r.output
    assert "is now bounced" in r.output
    monkeypatch.setenv("DIGESTMAIL_BOUNCE_IMAP_URL", imap_server.url("NoSuchFolder"))
    r = runner.invoke(app, ["events", "fetch"])
    assert r.exit_code == 1 and "Could not read the bounce mailbox" in r.output
    assert "imap-test-password" not in r.output
