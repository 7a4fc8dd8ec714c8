"""``digestmail issue add|list``, ``send`` and ``campaign …`` as staff type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digestmail.cli import app
from digestmail.config import Settings, reset_settings_cache
from digestmail.db import Database
from tests.campaign_helpers import ISSUE_FILE, add_subscribers, outbox_counts
from tests.fakes.sendgrid import FakeSendGrid

runner = CliRunner()


@pytest.fixture
def db(sqlite_url: str) -> Database:
    database = Database(sqlite_url)
    add_subscribers(database, 12)
    add_subscribers(database, 2, status="pending", prefix="pending")
    return database


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _add() -> str:
    code, out = _invoke("issue", "add", str(ISSUE_FILE))
    assert code == 0, out
    return out.strip()


def test_issue_add_prints_the_slug_and_list_shows_it(db: Database) -> None:
    assert _add() == "policy-digest-9-1"
    code, out = _invoke("issue", "list", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row == {
        "slug": "policy-digest-9-1",
        "volume": "9.1",
        "title": row["title"],
        "date": "2024-03-01",
        "status": "draft",
        "sent_at": None,
    }
    code, out = _invoke("issue", "list")
    assert code == 0 and "policy-digest-9-1" in out and "draft" in out


def test_issue_add_refuses_a_broken_file_with_its_problems(db: Database, tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text(ISSUE_FILE.read_text().replace("volume:", "volume_typo:"), encoding="utf-8")
    code, out = _invoke("issue", "add", str(bad))
    assert code == 1
    assert "Not added" in out and "volume" in out
    assert json.loads(_invoke("issue", "list", "--json")[1]) == []


def test_send_needs_confirmation_and_never_blocks_without_a_terminal(db: Database) -> None:
    slug = _add()
    code, out = _invoke("send", slug)
    assert code == 1 and "--yes" in out
    assert json.loads(_invoke("campaign", "list", "--json")[1]) == []


def test_send_then_again(db: Database) -> None:
    slug = _add()
    settings = Settings()

    code, out = _invoke("send", slug, "--yes")
    assert code == 0, out
    assert "is sent: 12 sent, 0 failed" in out
    assert outbox_counts(settings.outbox_dir) == {f"user{i}@example.com": 1 for i in range(12)}
    (issue,) = json.loads(_invoke("issue", "list", "--json")[1])
    assert issue["status"] == "sent" and issue["sent_at"]

    code, out = _invoke("send", slug, "--yes")
    assert code == 1 and "already sent" in out and "--again" in out

    code, out = _invoke("send", slug, "--yes", "--again")
    assert code == 0, out
    assert set(outbox_counts(settings.outbox_dir).values()) == {2}
    listed = json.loads(_invoke("campaign", "list", "--json")[1])
    assert [c["status"] for c in listed] == ["sent", "sent"]

    code, out = _invoke("campaign", "resume", str(listed[0]["id"]))
    assert code == 1 and "nothing to resume" in out
    assert "0/?" not in out  # no empty progress bar first


def test_send_test_to_touches_nothing(db: Database) -> None:
    slug = _add()
    code, out = _invoke("send", slug, "--test-to", "a@example.org", "--test-to", "b@example.org")
    assert code == 0, out
    assert "Test sent to a@example.org" in out
    assert str(Settings().outbox_dir.resolve()) in out.replace("\n", "")
    assert set(outbox_counts(Settings().outbox_dir)) == {"a@example.org", "b@example.org"}
    assert json.loads(_invoke("campaign", "list", "--json")[1]) == []
    assert json.loads(_invoke("issue", "list", "--json")[1])[0]["status"] == "draft"


def test_campaign_status_pause_resume_cancel(db: Database) -> None:
    slug = _add()
    assert _invoke("send", slug, "--yes")[0] == 0

    code, out = _invoke("campaign", "status", "--json")
    data = json.loads(out)
    assert code == 0 and data["issue"] == slug and data["status"] == "sent"
    assert data["counts"]["accepted"] == 12 and data["resent"] == 0
    code, out = _invoke("campaign", "status", str(data["id"]))
    assert code == 0 and "accepted  12" in out
    code, out = _invoke("campaign", "list")
    assert code == 0 and slug in out

    code, out = _invoke("campaign", "pause", str(data["id"]))
    assert code == 1 and "is sent" in out
    code, out = _invoke("campaign", "resume", str(data["id"]))
    assert code == 1 and "is sent" in out
    code, out = _invoke("campaign", "cancel", "999")
    assert code == 1 and "no campaign 999" in out


def test_paused_campaign_is_resumed_from_the_command_line(db: Database) -> None:
    from digestmail import campaigns

    slug = _add()
    cid = campaigns.create_campaign(db, Settings(), slug)
    code, out = _invoke("campaign", "pause", str(cid))
    assert code == 0, out
    code, out = _invoke("send", slug, "--yes")
    assert code == 1 and f"campaign resume {cid}" in out

    code, out = _invoke("campaign", "resume", str(cid))
    assert code == 0, out
    assert json.loads(_invoke("campaign", "status", str(cid), "--json")[1])["status"] == "sent"


def test_campaign_status_says_how_many_may_receive_it_twice_after_a_crash(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digestmail import campaigns

    monkeypatch.setenv("DIGESTMAIL_SEND_CONCURRENCY", "3")
    monkeypatch.setenv("DIGESTMAIL_BATCH_SIZE", "250")
    reset_settings_cache()
    slug = _add()
    cid = campaigns.create_campaign(db, Settings(), slug)
    code, out = _invoke("campaign", "status", str(cid))
    said = " ".join(out.split())
    assert code == 0 and "If a sender dies, up to 750 recipients in flight" in said
    assert "(3 batches of up to 250)" in said and "may receive the issue twice" in said
    assert json.loads(_invoke("campaign", "status", str(cid), "--json")[1])["max_in_flight"] == 750
    # Once it is sent, nothing is in flight any more: the line is gone.
    assert _invoke("campaign", "resume", str(cid))[0] == 0
    assert "If a sender dies" not in _invoke("campaign", "status", str(cid))[1]


def test_unknown_issue(db: Database) -> None:
    code, out = _invoke("send", "no-such-issue", "--yes")
    assert code == 1 and "no issue 'no-such-issue'" in out


def test_send_test_to_refuses_a_bad_address_before_sending(db: Database) -> None:
    slug = _add()
    code, out = _invoke("send", slug, "--test-to", "a@example.org", "--test-to", "not-an-address")
    assert code == 1
    assert "Not sent: 'not-an-address' is not a valid email address" in out
    assert not Settings().outbox_dir.exists() or not any(Settings().outbox_dir.iterdir())


def test_send_test_to_says_plainly_when_the_transport_refuses(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = _add()
    with FakeSendGrid(api_key="SG.right") as fake:
        monkeypatch.setenv("DIGESTMAIL_TRANSPORT", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.right")
        monkeypatch.setenv("DIGESTMAIL_SENDGRID_API_HOST", fake.url)
        reset_settings_cache()
        fake.fail_next(
            400,
            body={
                "errors": [
                    {
                        "message": "The from address does not match a verified Sender Identity.",
                        "field": "from",
                    }
                ]
            },
        )
        result = runner.invoke(app, ["send", slug, "--test-to", "a@example.org"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Test not sent: SendGrid refused the request (400)" in result.output
    assert "verified Sender Identity" in result.output and "Traceback" not in result.output
    assert "SG.right" not in result.output


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_send_refused_while_a_campaign_is_unfinished_says_what_to_type(db: Database) -> None:
    from digestmail import campaigns

    slug = _add()
    cid = campaigns.create_campaign(db, Settings(), slug)
    code, out = _invoke("send", slug, "--yes")
    assert code == 1
    assert _one_line(out) == (
        f"Campaign {cid} of {slug} is scheduled: continue it with "
        f"`digestmail campaign resume {cid}`, or cancel it with "
        f"`digestmail campaign cancel {cid}` before starting another."
    )


def _subject_too_long(db: Database, slug: str) -> None:
    """An issue stored before `issue check` refused such titles (only SQLite holds one)."""
    from sqlalchemy import update

    from digestmail.campaigns.tables import I

    with db.engine.begin() as conn:
        conn.execute(update(I).where(I.c.slug == slug).values(subject="T" * 1000))


def test_an_issue_that_cannot_be_sent_is_said_in_one_line_by_send_resume_and_test_to(
    db: Database,
) -> None:
    slug = _add()
    _subject_too_long(db, slug)

    code, out = _invoke("send", slug, "--test-to", "editor@example.org")
    assert code == 1 and "Traceback" not in out
    assert _one_line(out).startswith(
        f"Not sent: issue {slug} cannot be sent as an email: the Subject header is longer "
        "than 998 characters."
    )
    code, out = _invoke("send", slug, "--yes")
    assert code == 1 and "Traceback" not in out
    (listed,) = json.loads(_invoke("campaign", "list", "--json")[1])
    cid = listed["id"]
    assert listed["status"] == "failed" and listed["error_reason"] == "unbuildable"
    assert listed["counts"]["claimed"] == 0 and listed["counts"]["pending"] == 12
    expected = (
        f"Campaign {cid} failed: issue {slug} cannot be sent as an email: the Subject header "
        "is longer than 998 characters. Fix the issue file, store it again with "
        f"`digestmail issue add FILE`, then continue with `digestmail campaign resume {cid}`."
    )
    assert expected in _one_line(out)
    code, out = _invoke("campaign", "resume", str(cid))
    assert code == 1 and expected in _one_line(out) and "Traceback" not in out
    code, out = _invoke("campaign", "status", str(cid))
    assert code == 0 and "cannot be sent as an email" in out

    # Fixed and stored again, the campaign goes out.
    assert _add() == slug
    code, out = _invoke("campaign", "resume", str(cid))
    assert code == 0, out
    assert outbox_counts(Settings().outbox_dir) == {f"user{i}@example.com": 1 for i in range(12)}


def test_a_campaign_the_transport_refuses_ends_in_one_line_with_the_next_step_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = _add()
    with FakeSendGrid(api_key="SG.right") as fake:
        monkeypatch.setenv("DIGESTMAIL_TRANSPORT", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
        monkeypatch.setenv("DIGESTMAIL_SENDGRID_API_HOST", fake.url)
        reset_settings_cache()
        result = runner.invoke(app, ["send", slug, "--yes"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    (cid,) = [c["id"] for c in json.loads(_invoke("campaign", "list", "--json")[1])]
    error = [line for line in result.output.splitlines() if line.startswith("Campaign ")][-1]
    assert error.startswith(f"Campaign {cid} is failed: SendGrid refused")
    assert error.endswith(f"Fix the cause, then continue with `digestmail campaign resume {cid}`.")
    assert error.count("campaign resume") == 1 and ".." not in error and "SG.wrong" not in error
