"""Sendings in the admin (web/admin/campaigns.py): live progress, pause, continue, cancel,
and their figures."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digestmail import campaigns, events, issues, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import EventKind, EventSource, utcnow
from tests.adminhelpers import Admin, admin_client
from tests.campaign_helpers import add_subscribers, deliveries, store_issue

SLUG = "us-japan-alliance-digest-4-1"


def _slow_list(settings: Settings, example_issue: Path, people: int) -> None:
    db = Database(settings.database_url)
    issues.add_issue(db, settings, example_issue, ready=True)
    with db.session() as session:
        subscribers.import_rows(
            session,
            [subscribers.ImportRow(i, f"reader{i}@example.org", None) for i in range(people)],
            double_opt_in=False,
            staff="test",
            source_label="test",
            settings=settings,
        )
    db.dispose()


def _wait(
    admin: Admin, url: str, what: str, test: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = admin.client.get(url).json()
        if test(data):
            return data
        assert time.monotonic() < deadline, f"{what}: {data}"
        time.sleep(0.1)


def test_pause_continue_and_cancel_a_sending(db_url: str, example_issue: Path) -> None:
    # Two messages a second, one per batch: slow enough to catch it on its way.
    settings = Settings(send_rate=2, batch_size=1)
    _slow_list(settings, example_issue, 12)
    with admin_client(settings) as admin:
        where = admin.post(f"/admin/issues/{SLUG}/send").headers["location"]
        progress = f"{where}/progress.json"
        _wait(admin, progress, "sending", lambda d: d["status"] == "sending" and d["sent"] >= 1)
        page = admin.client.get(where)
        assert 'data-live="true"' in page.text and ">Pause</button>" in page.text

        paused = admin.follow(admin.post(f"{where}/pause"))
        assert Admin.notice(paused).startswith("Paused.")
        assert ">Continue</button>" in paused.text
        first = _wait(admin, progress, "paused", lambda d: d["status"] == "paused")
        # Nothing more goes out while paused, beyond the batches already in flight (at
        # most DIGESTMAIL_SEND_CONCURRENCY of them).
        time.sleep(1.5)
        held = admin.client.get(progress).json()
        assert held["sent"] <= first["sent"] + settings.send_concurrency and held["left"] > 0

        resumed = admin.follow(admin.post(f"{where}/resume"))
        assert Admin.notice(resumed) == "Sending again, from where it stopped."
        _wait(admin, progress, "more sent", lambda d: d["sent"] > held["sent"])

        assert "Cancel this sending?" in admin.client.get(f"{where}/cancel").text
        cancelled = admin.follow(admin.post(f"{where}/cancel"))
        assert Admin.notice(cancelled).startswith("Cancelled.")
        done = _wait(admin, progress, "cancelled", lambda d: not d["live"])
        assert done["status"] == "cancelled" and done["left"] > 0
        assert done["sent"] + done["left"] + done["failed"] + done["skipped"] == 12
        # Nothing to pause or continue any more; said, not crashed.
        again = admin.follow(admin.post(f"{where}/resume"))
        assert "cancelled" in Admin.notice(again)
        listing = admin.client.get("/admin/campaigns")
        assert "Cancelled" in listing.text and SLUG in listing.text
        home = admin.client.get("/admin")
        assert "Nothing is being sent right now." in home.text and "Recent sendings" in home.text


def test_unknown_sendings_are_not_found(sqlite_url: str) -> None:
    with admin_client(Settings()) as admin:
        assert admin.client.get("/admin/campaigns/99").status_code == 404
        assert admin.client.get("/admin/campaigns/99/progress.json").status_code == 404
        r = admin.follow(admin.post("/admin/campaigns/99/pause"))
        assert r.status_code == 404


def test_a_sending_shows_its_figures(settings: Settings) -> None:
    db = Database(settings.database_url)
    cid = campaigns.create_campaign(db, settings, _ten_readers(db, settings))
    with admin_client(settings) as admin:
        assert "What became of it" not in admin.client.get(f"/admin/campaigns/{cid}").text
        campaigns.run_campaign(db, settings, cid)
        rows = deliveries(db, cid)
        events.receive(
            db,
            settings,
            [
                Normalised(
                    event_id=f"test:{kind}:{email}",
                    kind=kind,
                    source=EventSource.SENDGRID,
                    email=email,
                    occurred_at=utcnow(),
                    delivery_id=rows[email][0],
                )
                for kind, email in [
                    (EventKind.BOUNCED, "user0@example.com"),
                    (EventKind.COMPLAINED, "user1@example.com"),
                    (EventKind.UNSUBSCRIBED, "user2@example.com"),
                ]
            ],
        )
        page = admin.client.get(f"/admin/campaigns/{cid}").text
        figures = page[page.index("What became of it") :]
        cells = re.findall(
            r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td>'
            r'<td class="num">([^<]*)</td>',
            figures,
        )
        assert cells == [
            ("Sent (taken by the mail service)", "10", ""),
            ("Delivered", "10", "100% of sent"),
            ("Bounced", "1", "10% of sent"),
            ("Marked it as spam", "1", "10% of sent"),
            ("Opened it", "0", "0.0% of sent"),
            ("Clicked a link", "0", "0.0% of sent"),
            ("Unsubscribed", "1", "10% of sent"),
        ]
        assert "Complaints reached 0.3% of delivered mail" in figures  # the alarm
        assert "Sent through the outbox: nothing reports deliveries" in figures
    db.dispose()


def _ten_readers(db: Database, settings: Settings) -> str:
    add_subscribers(db, 10)
    return store_issue(db, settings)
