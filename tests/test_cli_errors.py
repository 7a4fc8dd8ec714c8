"""The one error handler, through real ``digestmail`` processes: what an operator sees.

Any error ends as one line on stderr and exit status 1 (2 for a usage or configuration
mistake); the traceback only with ``--verbose``. A few findings of issue 7 are
replayed end to end here; the rest are tested in-process next to their commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.campaign_helpers import add_subscribers

DIGESTMAIL = str(Path(sys.executable).parent / "digestmail")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DIGESTMAIL, *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cancelling_a_campaign_id_too_big_for_any_row_is_a_clear_line(sqlite_url: str) -> None:
    line = _one_line(_run("campaign", "cancel", "99999999999999999999"), 1)
    assert (
        line == "There is no campaign 99999999999999999999; `digestmail campaign list` shows them."
    )


BAD_SETTINGS = [
    ("DIGESTMAIL_DATABASE_URL", "garbage"),
    ("DIGESTMAIL_LOG_LEVEL", "LOUD"),
    ("DIGESTMAIL_SMTP_URL", "http://x"),
    ("DIGESTMAIL_FROM", "garbage"),
]


def test_a_bad_setting_is_refused_before_anything_runs() -> None:
    # Started together (each process spends its second importing), checked one by one.
    procs = [
        subprocess.Popen(
            [DIGESTMAIL, "serve"],
            env={**os.environ, name: value},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, value in BAD_SETTINGS
    ]
    for (name, _), proc in zip(BAD_SETTINGS, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        line = _one_line(result, 2)
        assert line.startswith(f"The configuration is not valid: {name}: ")


def test_a_database_not_yet_created_and_an_unreachable_one_each_say_what_to_do(
    tmp_path: Path,
) -> None:
    line = _one_line(_run("subscribers", "list"), 1)  # the test's own, not initialised
    assert line.endswith("has no tables yet: run `digestmail init` first.")
    unreachable = "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"
    line = _one_line(_run("campaign", "list", DIGESTMAIL_DATABASE_URL=unreachable), 1)
    assert "DIGESTMAIL_DATABASE_URL" in line and "hunter2" not in line


def test_a_subscriber_named_like_markup_is_listed_as_typed(sqlite_url: str) -> None:
    from sqlalchemy import update

    from digestmail.db import Database
    from tests.campaign_helpers import SUBSCRIBERS

    db = Database(sqlite_url)
    add_subscribers(db, 2)
    with db.engine.begin() as conn:
        conn.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == 1).values(name="[/bold]"))
        conn.execute(
            update(SUBSCRIBERS)
            .where(SUBSCRIBERS.c.id == 2)
            .values(name="[link=https://evil.example]Click[/link]")
        )
    db.dispose()
    result = _run("subscribers", "list")
    assert result.returncode == 0, result.stderr
    assert "[/bold]" in result.stdout and "[link=https://evil.example]Click[/link]" in result.stdout


def test_the_traceback_is_shown_only_with_verbose(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database file, whatever its name says" * 100)
    env = {"DIGESTMAIL_DATABASE_URL": f"sqlite:///{broken}"}

    line = _one_line(_run("campaign", "list", **env), 1)
    assert line.startswith("Cannot use the database DIGESTMAIL_DATABASE_URL names")
    assert "file is not a database" in line

    verbose = _run("--verbose", "campaign", "list", **env)
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == line  # the same line, last


def test_a_usage_error_is_one_line_with_status_2() -> None:
    line = _one_line(_run("campaign", "cancel", "twelve"), 2)
    assert line.startswith("digestmail campaign cancel: Invalid value for 'campaign_id'")
