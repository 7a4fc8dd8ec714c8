"""Campaign figures from events: unique recipients, rates, complaint warnings."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from digestmail import events, stats
from digestmail.cli import app
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import EventKind, EventSource, utcnow
from tests.campaign_helpers import deliveries, sent_campaign

runner = CliRunner()


def _events(
    db: Database, settings: Settings, cid: int, kind: EventKind, emails: list[str], tag: str
) -> None:
    rows = deliveries(db, cid)
    found = [
        Normalised(
            event_id=f"test:{tag}:{kind}:{i}",
            kind=kind,
            source=EventSource.SENDGRID,
            email=email,
            occurred_at=utcnow(),
            delivery_id=rows[email][0],
        )
        for i, email in enumerate(emails)
    ]
    events.receive(db, settings, found)


@pytest.mark.parametrize(
    ("rate", "level"),
    [
        (0.0, stats.Level.OK),
        (0.001, stats.Level.OK),
        (0.0011, stats.Level.WARNING),
        (0.0029, stats.Level.WARNING),
        (0.003, stats.Level.ALARM),
        (0.02, stats.Level.ALARM),
    ],
)
def test_complaint_levels(rate: float, level: stats.Level) -> None:
    assert stats.complaint_level(rate) is level


def test_figures_count_recipients_once_and_rate_them(
    database: Database, settings: Settings
) -> None:
    sg = settings.model_copy(update={"transport": "outbox"})
    cid = sent_campaign(database, sg, 20)
    emails = [f"user{i}@example.com" for i in range(20)]
    # Pretend SendGrid reported on it: fix the transport so delivered means SendGrid's word.
    with database.engine.begin() as conn:
        from digestmail.campaigns.tables import C

        conn.execute(C.update().where(C.c.id == cid).values(transport="sendgrid"))
    _events(database, sg, cid, EventKind.DELIVERED, emails[:16], "a")
    _events(database, sg, cid, EventKind.OPENED, emails[:8] + emails[:8], "b")  # twice each
    _events(database, sg, cid, EventKind.CLICKED, emails[:2], "c")
    _events(database, sg, cid, EventKind.BOUNCED, emails[16:20], "d")
    _events(database, sg, cid, EventKind.COMPLAINED, emails[5:6], "e")
    _events(database, sg, cid, EventKind.UNSUBSCRIBED, emails[6:8], "f")
    fig = stats.campaign_figures(database, cid)
    assert fig is not None
    assert (fig.sent, fig.delivered, fig.bounced, fig.opened, fig.clicked) == (20, 16, 4, 8, 2)
    assert (fig.complained, fig.unsubscribed) == (1, 2)
    assert fig.rates["opened"] == 0.5 and fig.rates["bounced"] == 0.2
    assert fig.complaint_level is stats.Level.ALARM  # 1 in 16
    r = runner.invoke(app, ["campaign", "status", str(cid)])
    assert r.exit_code == 0, r.output
    assert "Unique opens         8  50% of delivered" in r.output
    assert "ALARM" in r.output
    data = json.loads(runner.invoke(app, ["campaign", "status", str(cid), "--json"]).output)
    assert data["figures"]["unique_opens"] == 8 and data["figures"]["complaint_level"] == "alarm"


def test_stats_puts_the_last_campaigns_side_by_side(database: Database, settings: Settings) -> None:
    first = sent_campaign(database, settings, 5)
    from digestmail import campaigns

    slug = campaigns.campaign_info(database, first).issue_slug
    second = campaigns.create_campaign(database, settings, slug, again=True)
    campaigns.run_campaign(database, settings, second)
    _events(database, settings, second, EventKind.BOUNCED, ["user1@example.com"], "x")
    r = runner.invoke(app, ["stats", "--json", "--last", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [d["campaign"] for d in data] == [first, second]
    assert [d["bounced"] for d in data] == [0, 1]
    # The outbox reports no deliveries: what it accepted counts as delivered.
    assert [d["delivered"] for d in data] == [5, 5]
    assert len(json.loads(runner.invoke(app, ["stats", "--json", "--last", "1"]).output)) == 1
    r = runner.invoke(app, ["stats"])
    assert r.exit_code == 0, r.output
    assert "Compl." in r.output and "20%" in r.output  # 1 of 5 bounced
