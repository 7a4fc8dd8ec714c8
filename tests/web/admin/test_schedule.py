"""The schedule in the admin (web/admin/schedule.py): create, move, skip, pause, continue,
cancel, and the refusals of ``scheduling`` said in plain words."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digestmail import campaigns, issues, scheduling
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import IssueStatus, ScheduleStatus, utcnow
from digestmail.scheduling import occurrences
from tests.adminhelpers import Admin, admin_client
from tests.campaign_helpers import add_subscribers, store_volume

NY = "America/New_York"


def _schedule_id(response_location: str) -> int:
    found = re.fullmatch(r"/admin/schedule/(\d+)", response_location)
    assert found, response_location
    return int(found.group(1))


def test_a_one_off_send_made_moved_paused_and_cancelled(settings: Settings, tmp_path: Path) -> None:
    db = Database(settings.database_url)
    slug = store_volume(db, settings, tmp_path, "9.2", "2024-03-15")
    title = issues.get_issue(db, slug).title  # type: ignore[union-attr]
    with admin_client(settings) as admin:
        form = admin.client.get("/admin/schedule")
        assert "Nothing is scheduled" in form.text and title in form.text
        # From the issue's page, the form comes with the issue chosen.
        chosen = admin.client.get(f"/admin/schedule?issue={slug}")
        assert f'<option value="{slug}" selected>' in chosen.text

        made = admin.post(
            "/admin/schedule/once",
            {"issue": slug, "date": "2031-05-02", "time": "09:30", "tz": NY},
        )
        sid = _schedule_id(made.headers["location"])
        shown = admin.client.get(made.headers["location"])
        assert Admin.notice(shown) == (
            f"Scheduled: “{title}” goes out Fri 02 May 2031 09:30 EDT (America/New_York). "
            "It is marked ready to send."
        )
        assert f"Once: “{title}”" in shown.text and ">Pause</button>" in shown.text
        assert issues.get_issue(db, slug).status is IssueStatus.READY  # type: ignore[union-attr]
        listed = admin.client.get("/admin/schedule")
        assert f'href="/admin/schedule/{sid}"' in listed.text and "Active" in listed.text

        moved = admin.follow(
            admin.post(
                f"/admin/schedule/{sid}/move",
                {"date": "2031-05-09", "time": "07:00", "tz": "Europe/Berlin"},
            )
        )
        assert Admin.notice(moved) == (
            f"Moved: “{title}” now goes out Fri 09 May 2031 07:00 CEST (Europe/Berlin)."
        )
        # Moved into the hour the clocks skip: the page asks, and the choice is kept.
        gap = admin.post(
            f"/admin/schedule/{sid}/move", {"date": "2032-03-14", "time": "02:15", "tz": NY}
        )
        assert gap.status_code == 422 and "which did you mean?" in gap.text
        later = re.findall(r'name="moment" value="([^"]+)"', gap.text)[1]
        moved = admin.follow(
            admin.post(
                f"/admin/schedule/{sid}/move",
                {"date": "2032-03-14", "time": "02:15", "tz": NY, "moment": later},
            )
        )
        assert Admin.notice(moved) == (
            f"Moved: “{title}” now goes out Sun 14 Mar 2032 03:15 EDT (America/New_York)."
        )
        moved = admin.follow(
            admin.post(
                f"/admin/schedule/{sid}/move",
                {"date": "2031-05-09", "time": "07:00", "tz": "Europe/Berlin"},
            )
        )
        paused = admin.follow(admin.post(f"/admin/schedule/{sid}/pause"))
        assert Admin.notice(paused).startswith("Paused: nothing is sent until you press Continue.")
        info = scheduling.schedule_info(db, sid)
        assert info.status is ScheduleStatus.PAUSED and info.next_run is None
        again = admin.follow(admin.post(f"/admin/schedule/{sid}/pause"))
        assert Admin.notice(again) == "It is paused already."
        resumed = admin.follow(admin.post(f"/admin/schedule/{sid}/resume"))
        assert Admin.notice(resumed) == (
            "Continuing. The next send is Fri 09 May 2031 07:00 CEST (Europe/Berlin)."
        )
        # A one-off is moved or cancelled, not skipped.
        refused = admin.follow(admin.post(f"/admin/schedule/{sid}/skip", {"on": "2031-05-09"}))
        assert Admin.notice(refused) == "A send of one issue is not skipped: move it, or cancel it."

        assert "Cancel this schedule?" in admin.client.get(f"/admin/schedule/{sid}/cancel").text
        cancelled = admin.follow(admin.post(f"/admin/schedule/{sid}/cancel"))
        assert Admin.notice(cancelled).startswith("Cancelled: it sends nothing more.")
        assert ">Pause</button>" not in cancelled.text
        twice = admin.follow(admin.post(f"/admin/schedule/{sid}/cancel"))
        assert Admin.notice(twice) == "This schedule is cancelled, so it cannot be cancelled."
        assert "Cancelled" in admin.client.get("/admin/schedule?all=true").text
        assert admin.client.get("/admin/schedule/999").status_code == 404
        assert admin.client.get("/admin/schedule/99999999999").status_code == 404
    db.dispose()


def test_refusals_in_plain_words(settings: Settings, tmp_path: Path) -> None:
    db = Database(settings.database_url)
    slug = store_volume(db, settings, tmp_path, "9.2", "2024-03-15")
    add_subscribers(db, 1)
    sent = store_volume(db, settings, tmp_path, "9.3", "2024-03-29", ready=True)
    campaigns.run_campaign(db, settings, campaigns.create_campaign(db, settings, sent))

    def once(admin: Admin, **values: str) -> str:
        r = admin.post("/admin/schedule/once", {"issue": slug, "tz": NY, **values})
        assert r.status_code == 422, r.text[:300]
        return Admin.notice(r)

    with admin_client(settings) as admin:
        assert once(admin, date="2020-01-01", time="09:00").startswith(
            "That time has passed (it is now "
        )
        # A time the clocks skip: the page offers the times either side of it.
        r = admin.post(
            "/admin/schedule/once", {"issue": slug, "date": "2031-03-09", "time": "02:30", "tz": NY}
        )
        assert r.status_code == 422
        assert Admin.notice(r) == (
            "09 Mar 2031, 02:30 does not exist in America/New_York: the clocks skip that hour "
            "when summer time starts. Choose one of the times either side of it, or another time."
        )
        assert "That time does not exist that day: which did you mean?" in r.text
        gap = re.findall(r'name="moment" value="([^"]*)"', r.text)
        assert gap == ["2031-03-09T06:30:00+00:00", "2031-03-09T07:30:00+00:00", ""]
        assert "Sun 09 Mar 2031 01:30 EST (America/New_York) (before the clocks go forward)" in (
            r.text
        )
        assert "Sun 09 Mar 2031 03:30 EDT (America/New_York) (after the clocks go forward)" in (
            r.text
        )
        # "Another time" keeps what is typed: the same time is asked about again.
        assert once(admin, date="2031-03-09", time="02:30", moment="").startswith(
            "09 Mar 2031, 02:30 does not exist"
        )
        assert once(admin, date="2031-05-02", time="9 o'clock") == (
            "The date and time could not be read: give a date and a time such as 09:30."
        )
        assert once(admin, date="2031-05-02", time="09:00", tz="Mars/Olympus") == (
            "“Mars/Olympus” is not a time zone, such as America/New_York, Europe/Berlin or UTC."
        )
        assert once(admin, date="2031-05-02", time="09:00", issue="no-such-issue") == (
            "That issue does not exist (any more)."
        )
        assert once(admin, date="2031-05-02", time="09:00", issue=sent).startswith(
            f"“{sent}” was already sent on "
        )
        # Twice that night: the page asks which, and the one chosen is kept with its offset.
        r = admin.post(
            "/admin/schedule/once", {"issue": slug, "date": "2031-11-02", "time": "01:30", "tz": NY}
        )
        assert r.status_code == 422
        assert Admin.notice(r) == (
            "02 Nov 2031, 01:30 happens twice in America/New_York: the clocks go back that "
            "night. Choose which one you mean."
        )
        choices = re.findall(r'name="moment" value="([^"]*)"', r.text)
        assert choices == ["2031-11-02T05:30:00+00:00", "2031-11-02T06:30:00+00:00", ""]
        assert "Sun 02 Nov 2031 01:30 EST (America/New_York)" in r.text
        made = admin.post(
            "/admin/schedule/once",
            {"issue": slug, "date": "2031-11-02", "time": "01:30", "tz": NY, "moment": choices[1]},
        )
        assert "goes out Sun 02 Nov 2031 01:30 EST" in Admin.notice(admin.follow(made))
        assert once(admin, date="2031-05-02", time="09:00").startswith(
            f"“{slug}” is already scheduled for Sun 02 Nov 2031 01:30 EST"
        )

        def cadence(**values: str) -> str:
            form = {"every": "2", "unit": "week", "weekday": "friday", "time": "09:00", "tz": NY}
            r = admin.post("/admin/schedule/cadence", {**form, **values})
            assert r.status_code == 422, r.text[:300]
            assert 'value="' + (values.get("time") or "09:00") + '"' in r.text  # kept to fix
            return Admin.notice(r)

        assert re.fullmatch(
            r"\d\d Mar \d{4}, 02:30 does not exist in America/New_York: the clocks skip that "
            r"hour when summer time starts, and the send would be lost\. Choose another time\.",
            cadence(weekday="sunday", time="02:30"),
        )
        assert cadence(every="0") == (
            "Give how often as a number of weeks from 1 to 52 (or of days, up to 366)."
        )
        assert cadence(unit="day", every="400") == cadence(every="53")
        assert cadence(time="25:00") == (
            "“25:00” is not a time of day, such as 09:00 (hours 0-23, minutes 0-59)."
        )
        assert cadence(start="next week") == "“next week” is not a date."
    db.dispose()


def test_a_cadence_its_coming_sends_skipped_and_what_became_of_them(
    settings: Settings, tmp_path: Path
) -> None:
    db = Database(settings.database_url)
    with admin_client(settings) as admin:
        made = admin.post(
            "/admin/schedule/cadence",
            {"every": "2", "unit": "week", "weekday": "friday", "time": "09:00", "tz": NY},
        )
        sid = _schedule_id(made.headers["location"])
        shown = admin.follow(made)
        notice = Admin.notice(shown)
        first = scheduling.schedule_info(db, sid).next_run
        assert first is not None and first.astimezone(ZoneInfo(NY)).weekday() == 4
        assert notice.startswith(
            "Scheduled: every 2 weeks on Friday at 09:00 (America/New_York). The first send is "
            f"{first.astimezone(ZoneInfo(NY)):%a %d %b %Y} 09:00 "
        )
        assert notice.endswith(
            "No issue is ready yet: mark one ready to send before then, or nothing goes out."
        )
        coming = re.findall(r'name="on" value="(\d{4}-\d\d-\d\d)"', shown.text)
        assert len(coming) == 6
        skipped = admin.follow(admin.post(f"/admin/schedule/{sid}/skip", {"on": coming[1]}))
        assert Admin.notice(skipped).startswith("The send of ")
        after = re.findall(r'name="on" value="(\d{4}-\d\d-\d\d)"', skipped.text)
        assert coming[1] not in after and after[0] == coming[0] and len(after) == 6
        assert "Skipped: " in skipped.text
        # A day it does not send on: the next ones are named.
        thursday = (first.astimezone(ZoneInfo(NY)) + timedelta(days=6)).date()
        nothing = admin.follow(
            admin.post(f"/admin/schedule/{sid}/skip", {"on": thursday.isoformat()})
        )
        assert Admin.notice(nothing).startswith(f"There is no send on {thursday:%d %b %Y}. ")
        late = admin.follow(admin.post(f"/admin/schedule/{sid}/skip", {"on": "2020-01-03"}))
        assert "There is no send on 03 Jan 2020" in Admin.notice(late)
        move = admin.post(f"/admin/schedule/{sid}/move", {"date": "2031-01-01", "time": "09:00"})
        assert move.status_code == 422 and Admin.notice(move).startswith("A rhythm does not move.")

        # A rhythm set a month ago whose first send came with nobody subscribed: what
        # became of it is listed.
        month_ago = utcnow() - timedelta(days=30)
        older = scheduling.add_cadence(
            db, settings, every="1w", on="mon", at="09:00", tz=NY, now=month_ago
        )
        assert older.next_run is not None
        store_volume(db, settings, tmp_path, "9.2", "2024-03-15", ready=True)
        occurrences.take_slot(db, settings, older.id, older.next_run + timedelta(seconds=1))
        page = admin.client.get(f"/admin/schedule/{older.id}")
        assert "Nothing sent: there were no active subscribers" in page.text
        listing = admin.client.get("/admin/schedule")
        assert "Recent sends" in listing.text
        assert "Nothing sent: there were no active subscribers" in listing.text
    db.dispose()
