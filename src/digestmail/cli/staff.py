"""``digestmail staff …``: the accounts that sign in to the admin at /admin.

A refusal of the staff code (``staff.StaffError``) ends the command in one line,
worded here (``words_for``).
"""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from digestmail import staff
from digestmail.cli.common import console, database, fail
from digestmail.cli.errors import words_for

app = typer.Typer(
    help="Staff accounts for the admin in the browser: add, list, remove, password.",
    no_args_is_help=True,
)

_PASSWORD_STDIN = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from the first line of standard input (scripts), "
    "instead of asking for it twice.",
)


@words_for(staff.StaffError)
def _staff_error(exc: staff.StaffError) -> tuple[str, int]:
    return _problem(exc), 1


def _problem(exc: staff.StaffError) -> str:
    """The staff code's refusal in words, with what to do next."""
    if isinstance(exc, staff.StaffExists):
        return (
            f"There is already a staff account for {exc.email}; change its password with "
            f"`digestmail staff password {exc.email}`."
        )
    if isinstance(exc, staff.StaffNotFound):
        return f"There is no staff account for {exc.email}; `digestmail staff list` shows them."
    if isinstance(exc, staff.BadStaffAddress):
        return f"{exc.email!r} is not a usable email address: {exc.reason}."
    if isinstance(exc, staff.WeakPassword):
        match exc.problem:
            case staff.PasswordProblem.TOO_SHORT:
                return (
                    f"The password is too short: use at least {staff.PASSWORD_MIN} characters "
                    "(a few unrelated words make a good one)."
                )
            case staff.PasswordProblem.TOO_LONG:
                return f"The password is too long: at most {staff.PASSWORD_MAX} characters."
            case staff.PasswordProblem.IS_EMAIL:
                return "The password cannot be the email address itself."
    return str(exc)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise fail("No password on standard input; nothing was changed.")
        return password
    if not sys.stdin.isatty():
        raise fail(
            "No terminal to ask for the password on: pass --password-stdin and give it "
            "on standard input."
        )
    typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return typed


@app.command()
def add(
    email: str = typer.Argument(..., help="The email address they sign in with."),
    password_stdin: bool = _PASSWORD_STDIN,
    generate: bool = typer.Option(
        False,
        "--generate-password",
        help="Make up a strong password and print it once (instead of asking for one).",
    ),
    if_no_staff: bool = typer.Option(
        False,
        "--if-no-staff",
        help="Only if there is no staff account yet; otherwise do nothing (setup scripts).",
    ),
) -> None:
    """Add a staff account. Asks for the password twice unless told otherwise."""
    with database() as db:
        if if_no_staff and staff.count(db):
            return
        key = staff.account_key(email)
        password = staff.generate_password() if generate else _read_password(password_stdin)
        member = staff.add(db, key, password)
    console.print(f"Added the staff account {member.email}.")
    if generate:
        console.print(f"Its password (shown only this once): {password}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The staff accounts, by address."""
    with database() as db:
        members = staff.list_staff(db)
    if as_json:
        typer.echo(
            json.dumps(
                [{"email": m.email, "created_at": m.created_at.isoformat()} for m in members],
                indent=2,
            )
        )
        return
    if not members:
        console.print("No staff accounts yet. Add one with `digestmail staff add EMAIL`.")
        return
    table = Table("Email", "Added")
    for m in members:
        table.add_row(m.email, m.created_at.strftime("%Y-%m-%d %H:%M UTC"))
    console.print(table)


@app.command()
def remove(email: str = typer.Argument(..., help="The account's email address.")) -> None:
    """Remove a staff account; wherever it is signed in, it is signed out at once."""
    with database() as db:
        staff.remove(db, email)
    console.print(f"Removed the staff account {staff.account_key(email)}; its sign-ins ended.")


@app.command()
def password(
    email: str = typer.Argument(..., help="The account's email address."),
    password_stdin: bool = _PASSWORD_STDIN,
) -> None:
    """Set a new password; every browser signed in with the old one is signed out."""
    with database() as db:
        key = staff.find(db, email).email
        staff.set_password(db, key, _read_password(password_stdin))
    console.print(f"Changed the password of {key}; its other sign-ins ended.")
