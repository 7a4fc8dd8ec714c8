"""The dashboard (web/admin/home.py): the next send, what needs attention, the charts."""

from __future__ import annotations

import re
from pathlib import Path

from digestmail import campaigns, events, scheduling, stats
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import EventKind, EventSource, utcnow
from tests.adminhelpers import admin_client
from tests.campaign_helpers import deliveries, sent_campaign, store_volume

NY = "America/New_York"


def _desc(page: str, chart_id: str) -> str:
    found = re.search(rf'<desc id="{chart_id}-desc">([^<]*)</desc>', page)
    assert found, f"no chart {chart_id}"
    return found.group(1)


def test_a_new_list_says_there_is_nothing_yet(settings: Settings) -> None:
    with admin_client(settings) as admin:
        home = admin.client.get("/admin").text
        assert "Nothing is scheduled. Issues go out only when you send them." in home
        assert "No issue has been sent yet" in home
        assert "Nobody has been subscribed in this time." in home
        assert "Needs attention" not in home and "<svg" not in home


def test_the_dashboard_shows_the_next_send_warnings_and_charts(
    settings: Settings, tmp_path: Path
) -> None:
    db = Database(settings.database_url)
    first = sent_campaign(db, settings, 8)
    slug = campaigns.campaign_info(db, first).issue_slug
    second = campaigns.create_campaign(db, settings, slug, again=True)
    campaigns.run_campaign(db, settings, second)
    # One reader of the second sending marked it as spam: 1 in 8, an alarm.
    email = "user3@example.com"
    events.receive(
        db,
        settings,
        [
            Normalised(
                event_id="test:spam",
                kind=EventKind.COMPLAINED,
                source=EventSource.SENDGRID,
                email=email,
                occurred_at=utcnow(),
                delivery_id=deliveries(db, second)[email][0],
            )
        ],
    )
    cadence = scheduling.add_cadence(db, settings, every="2w", on="fri", at="09:00", tz=NY)
    assert cadence.next_run is not None
    when = f"{cadence.local(cadence.next_run):%a %d %b %Y}"
    with admin_client(settings) as admin:
        home = admin.client.get("/admin").text
        # Nothing ready for the next send: said where it is, and as a warning.
        assert f"{when} 09:00" in home
        assert "No issue is ready to send. Mark one ready before then" in home
        assert "Needs attention" in home
        assert re.search(
            r'<li class="(warning|alarm)"><span class="level">(Warning|Alarm):</span> No issue '
            rf"is ready for the send on {when} 09:00",
            home,
        )
        assert (
            '<li class="alarm"><span class="level">Alarm:</span> 12% of the people who got '
            f"“{slug}” marked it as spam."
        ) in home
        # The last issues side by side: each figure its own chart, the numbers in words.
        assert (
            _desc(home, "issues-sent") == "Sent, by issue, oldest first. Vol. 9.1: 8; Vol. 9.1: 8."
        )
        assert _desc(home, "issues-complained").endswith("Vol. 9.1: 0; Vol. 9.1: 1.")
        assert 'role="img" aria-labelledby="issues-sent-title issues-sent-desc"' in home
        assert home.count('<rect class="bar"') == 6 * 2 + 1  # six charts of two, and growth
        # The list over time: everyone joined this month (one bar), or this week.
        assert _desc(home, "growth-chart").endswith(f"{utcnow():%b %Y}: 7.")
        weekly = admin.client.get("/admin?growth=week").text
        assert "Subscribed at the end of each week" in weekly
        # A week is named by its Monday.
        monday = stats.period_start(utcnow().date(), stats.Period.WEEK)
        assert _desc(weekly, "growth-chart").endswith(f"{monday:%d %b}: 7.")
        assert '<a href="/admin?growth=week#growth" aria-current="true">' in weekly

        # With an issue ready, the next send names it and the warning goes.
        ready = store_volume(db, settings, tmp_path, "9.4", "2024-05-01", ready=True)
        home = admin.client.get("/admin").text
        assert f'It will send <a href="/admin/issues/{ready}">' in home
        assert "No issue is ready for the send" not in home

        # The page's state changes when a sending starts, so an open page reloads.
        before = admin.client.get("/admin/state.json").json()["state"]
        assert before == admin.client.get("/admin/state.json").json()["state"]
        started = campaigns.create_campaign(db, settings, ready)
        assert admin.client.get("/admin/state.json").json()["state"] != before
        campaigns.cancel_campaign(db, started)
    db.dispose()
