"""``digestmail staff …`` as the operator types it."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from digestmail import staff
from digestmail.cli import app
from digestmail.config import Settings
from digestmail.db import Database

runner = CliRunner()
PASSWORD = "four unrelated words here"


def _db(settings: Settings) -> Database:
    return Database(settings.database_url)


def test_add_from_stdin_list_password_remove(settings: Settings) -> None:
    r = runner.invoke(
        app, ["staff", "add", "Anna@Institute.Example", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert r.exit_code == 0, r.output
    assert "anna@institute.example" in r.output and PASSWORD not in r.output
    db = _db(settings)
    assert staff.authenticate(db, "anna@institute.example", PASSWORD)

    r = runner.invoke(app, ["staff", "list", "--json"])
    assert [m["email"] for m in json.loads(r.output)] == ["anna@institute.example"]
    r = runner.invoke(app, ["staff", "list"])
    assert "anna@institute.example" in r.output

    r = runner.invoke(
        app, ["staff", "add", "anna@institute.example", "--password-stdin"], input=PASSWORD
    )
    assert r.exit_code == 1 and "already a staff account" in r.output

    token = staff.start_session(db, staff.find(db, "anna@institute.example"), 3600)
    r = runner.invoke(
        app,
        ["staff", "password", "anna@institute.example", "--password-stdin"],
        input="new words for anna\n",
    )
    assert r.exit_code == 0, r.output
    assert staff.session_member(db, token) is None
    assert staff.authenticate(db, "anna@institute.example", "new words for anna")

    r = runner.invoke(app, ["staff", "remove", "anna@institute.example"])
    assert r.exit_code == 0 and staff.count(db) == 0
    r = runner.invoke(app, ["staff", "remove", "anna@institute.example"])
    assert r.exit_code == 1 and "no staff account" in r.output
    r = runner.invoke(
        app, ["staff", "password", "anna@institute.example", "--password-stdin"], input=PASSWORD
    )
    assert r.exit_code == 1 and "no staff account" in r.output
    db.dispose()


def _on_a_terminal(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run the installed command with a pseudo-terminal as its controlling terminal (where
    the password prompt reads), answering each prompt in turn; its exit status and screen."""
    exe = Path(sys.executable).parent / "digestmail"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its own
        os.execv(str(exe), [str(exe), *args])
    screen = b""
    deadline = time.monotonic() + timeout
    pending = list(answers)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            # click writes "Password:", then getpass turns echo off and writes " ".
            if pending and screen.endswith(b": "):
                os.write(fd, pending.pop(0).encode() + b"\n")
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


def test_the_password_is_asked_twice_and_must_match(settings: Settings) -> None:
    code, screen = _on_a_terminal(
        ["staff", "add", "anna@institute.example"],
        [PASSWORD, PASSWORD + "x", PASSWORD, PASSWORD],
    )
    assert code == 0, screen
    assert "do not match" in screen.lower()
    assert PASSWORD not in screen  # never echoed
    assert staff.authenticate(_db(settings), "anna@institute.example", PASSWORD)


def test_weak_password_and_bad_address_are_explained(settings: Settings) -> None:
    r = runner.invoke(
        app, ["staff", "add", "anna@institute.example", "--password-stdin"], input="short\n"
    )
    assert r.exit_code == 1 and "at least 12 characters" in r.output
    r = runner.invoke(app, ["staff", "add", "anna", "--password-stdin"], input=PASSWORD)
    assert r.exit_code == 1 and "not a usable email address" in r.output
    r = runner.invoke(app, ["staff", "add", "anna@institute.example", "--password-stdin"], input="")
    assert r.exit_code == 1 and "No password" in r.output
    assert staff.count(_db(settings)) == 0


def test_first_account_for_make_run(settings: Settings) -> None:
    r = runner.invoke(
        app, ["staff", "add", "admin@example.org", "--generate-password", "--if-no-staff"]
    )
    assert r.exit_code == 0, r.output
    password = r.output.rsplit(":", 1)[1].strip()
    assert len(password) >= staff.PASSWORD_MIN
    assert staff.authenticate(_db(settings), "admin@example.org", password)
    again = runner.invoke(
        app, ["staff", "add", "admin@example.org", "--generate-password", "--if-no-staff"]
    )
    assert again.exit_code == 0 and again.output == ""  # the second run says nothing
