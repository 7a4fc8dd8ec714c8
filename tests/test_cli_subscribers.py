"""``digestmail subscribers …`` against real databases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digestmail import subscribers
from digestmail.cli import app, common
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import (
    ChangeCause,
    ErasedAddress,
    Subscriber,
    SubscriberSource,
    SubscriberStatus,
)
from tests.webhelpers import outbox_messages

runner = CliRunner()


def _all(settings: Settings) -> dict[str, Subscriber]:
    db = Database(settings.database_url)
    with db.session() as s:
        rows = {sub.email_key: sub for sub in s.scalars(select(Subscriber))}
    db.dispose()
    return rows


def test_add_confirmed_and_unconfirmed(settings: Settings) -> None:
    r = runner.invoke(
        app, ["subscribers", "add", "Ada@Example.org", "--name", "Ada", "--confirmed"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["subscribers", "add", "bob@example.org"])
    assert r.exit_code == 0, r.output
    rows = _all(settings)
    ada, bob = rows["ada@example.org"], rows["bob@example.org"]
    assert ada.email == "Ada@example.org" and ada.status is SubscriberStatus.ACTIVE
    assert ada.source is SubscriberSource.STAFF and (ada.consent_by or "").startswith("staff")
    assert bob.status is SubscriberStatus.PENDING
    [mail] = outbox_messages(Path(settings.outbox_dir))
    assert mail["To"] == "bob@example.org"
    # Adding again (any case) is harmless and never duplicates.
    assert (
        runner.invoke(app, ["subscribers", "add", "ADA@example.org", "--confirmed"]).exit_code == 0
    )
    assert len(_all(settings)) == 2


def test_add_refuses_invalid_address(settings: Settings) -> None:
    r = runner.invoke(app, ["subscribers", "add", "not-an-address"])
    assert r.exit_code != 0
    assert "not a valid email address" in r.output
    assert _all(settings) == {}


def test_staff_cannot_overrule_an_unsubscribe(settings: Settings) -> None:
    runner.invoke(app, ["subscribers", "add", "gone@example.org", "--confirmed"])
    assert runner.invoke(app, ["subscribers", "remove", "gone@example.org"]).exit_code == 0
    assert _all(settings)["gone@example.org"].status is SubscriberStatus.UNSUBSCRIBED
    r = runner.invoke(app, ["subscribers", "add", "gone@example.org", "--confirmed"])
    assert r.exit_code == 0 and "unsubscribed" in r.output
    assert _all(settings)["gone@example.org"].status is SubscriberStatus.UNSUBSCRIBED
    assert runner.invoke(app, ["subscribers", "remove", "nobody@example.org"]).exit_code == 1


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def test_import_reports_bad_rows_and_is_idempotent(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    _write_csv(
        path,
        [
            ["Email", "Name"],
            ["one@example.org", "One"],
            ["not an address", "Bad"],  # line 3
            ["TWO@example.org", "Two"],
            ["two@example.org", "Two again"],  # repeated, other case
            ["", "no address"],  # line 6
            ["three@example.org", "Multi\nline name"],  # lines 7-8
            ["four@@example.org", ""],  # line 9
        ],
    )
    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert r.exit_code == 0, r.output
    assert "line 3" in r.output and "line 6" in r.output and "line 9" in r.output
    assert "Added: 3" in r.output
    rows = _all(settings)
    assert set(rows) == {"one@example.org", "two@example.org", "three@example.org"}
    assert rows["two@example.org"].email == "TWO@example.org"
    assert rows["three@example.org"].name == "Multi line name"
    assert all(s.status is SubscriberStatus.ACTIVE for s in rows.values())
    assert all(s.source is SubscriberSource.IMPORT for s in rows.values())
    assert "list.csv" in (rows["one@example.org"].consent_text or "")

    # Somebody unsubscribes; the next import of the same file must not bring them back.
    runner.invoke(app, ["subscribers", "remove", "one@example.org"])
    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert (
        r.exit_code == 0
        and "Added: 0" in r.output
        and "Already on the list (left unchanged): 3" in r.output
    )
    rows = _all(settings)
    assert len(rows) == 3 and rows["one@example.org"].status is SubscriberStatus.UNSUBSCRIBED


def test_import_with_double_opt_in_sends_confirmations(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    _write_csv(path, [["email"], ["a@example.org"], ["b@example.org"]])
    r = runner.invoke(app, ["subscribers", "import", str(path), "--double-opt-in"])
    assert r.exit_code == 0, r.output
    assert {s.status for s in _all(settings).values()} == {SubscriberStatus.PENDING}
    assert sorted(m["To"] for m in outbox_messages(Path(settings.outbox_dir))) == [
        "a@example.org",
        "b@example.org",
    ]
    runner.invoke(app, ["subscribers", "import", str(path), "--double-opt-in"])
    assert len(outbox_messages(Path(settings.outbox_dir))) == 2  # nobody mailed twice


def test_import_without_email_column_fails_clearly(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    _write_csv(path, [["address", "name"], ["a@example.org", "A"]])
    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert r.exit_code == 2 and "'email'" in r.output
    assert "found 'address', 'name'" in r.output and "nothing was imported" in r.output


def test_import_skips_rows_that_are_not_csv_and_goes_on(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    huge = "x" * (129 * 1024)  # over the csv module's 128 KiB field limit
    path.write_text(
        "email,name\n"
        "one@example.org,One\n"
        f"{huge}@example.org,Huge\n"  # line 3
        "two@example.org,Two\n"
        f'three@example.org,"{huge}"\n'  # line 5
        "josé@example.org,José\n"  # line 6: valid, but needs SMTPUTF8
        "four@example.org,Four\n",
        encoding="utf-8",
    )
    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert r.exit_code == 0, r.output
    assert r.exception is None
    assert "line 3" in r.output and "line 5" in r.output and "field larger than" in r.output
    assert "line 6" in r.output and "cannot deliver to" in r.output
    assert "Added: 3" in r.output and "Bad rows (skipped): 3" in r.output
    assert huge not in r.output  # a report line, not the whole cell
    assert set(_all(settings)) == {"one@example.org", "two@example.org", "four@example.org"}


def test_import_of_a_file_in_another_encoding_says_so(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes("email,name\nann@example.org,Ann\nbo@example.org,Bø\n".encode("latin-1"))
    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert r.exit_code == 2 and r.exception is not None and isinstance(r.exception, SystemExit)
    assert "not UTF-8" in r.output and "line 3" in r.output and "nothing was imported" in r.output
    assert _all(settings) == {}


def test_erase_keeps_only_a_hash_and_blocks_reimport(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    _write_csv(path, [["email", "name"], ["Erin@example.org", "Erin"], ["keep@example.org", "K"]])
    runner.invoke(app, ["subscribers", "import", str(path)])
    r = runner.invoke(app, ["subscribers", "remove", "erin@EXAMPLE.org", "--erase"])
    assert r.exit_code == 0, r.output
    assert set(_all(settings)) == {"keep@example.org"}
    db = Database(settings.database_url)
    with db.session() as s:
        hashes = list(s.scalars(select(ErasedAddress.email_hash)))
    db.dispose()
    assert len(hashes) == 1 and "erin" not in hashes[0]

    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert "Erased on request (skipped): 1" in r.output
    assert set(_all(settings)) == {"keep@example.org"}
    r = runner.invoke(app, ["subscribers", "add", "erin@example.org", "--confirmed"])
    assert r.exit_code == 1 and "erased" in r.output
    assert set(_all(settings)) == {"keep@example.org"}
    assert hashes == [subscribers.erased_hash(settings, "erin@example.org")]  # keyed


def test_remove_keeps_a_complaint(settings: Settings) -> None:
    runner.invoke(app, ["subscribers", "add", "angry@example.org", "--confirmed"])
    db = Database(settings.database_url)
    with db.session() as s:
        sub = subscribers.find(s, "angry@example.org")
        assert sub is not None
        subscribers.suppress(s, sub.id, SubscriberStatus.COMPLAINED)
    db.dispose()
    r = runner.invoke(app, ["subscribers", "remove", "angry@example.org"])
    assert r.exit_code == 0, r.output
    assert "stays complained" in r.output
    assert _all(settings)["angry@example.org"].status is SubscriberStatus.COMPLAINED


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export(settings: Settings, tmp_path: Path, fmt: str) -> None:
    runner.invoke(app, ["subscribers", "add", "x@example.org", "--name", "Xé", "--confirmed"])
    runner.invoke(app, ["subscribers", "add", "y@example.org"])
    out = tmp_path / f"out.{fmt}"
    r = runner.invoke(app, ["subscribers", "export", "--format", fmt, "-o", str(out)])
    assert r.exit_code == 0, r.output
    if fmt == "csv":
        with out.open(newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh))
    else:
        records = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["email"], r["name"], r["status"], r["source"]) for r in records] == [
        ("x@example.org", "Xé", "active", "staff"),
        ("y@example.org", "", "pending", "staff")
        if fmt == "csv"
        else ("y@example.org", None, "pending", "staff"),
    ]
    assert records[0]["created_at"] and records[0]["confirmed_at"]


def test_list_json(settings: Settings) -> None:
    runner.invoke(app, ["subscribers", "add", "x@example.org", "--confirmed"])
    runner.invoke(app, ["subscribers", "add", "y@example.org"])
    r = runner.invoke(app, ["subscribers", "list", "--status", "active", "--json"])
    assert r.exit_code == 0, r.output
    assert [row["email"] for row in json.loads(r.stdout)] == ["x@example.org"]
    r = runner.invoke(app, ["subscribers", "list"])
    assert "y@example.org" in r.output and "pending" in r.output


def _insert_named(settings: Settings, names: list[str]) -> None:
    """Subscribers whose stored names came from the public form, as typed."""
    db = Database(settings.database_url)
    with db.session() as s:
        for i, name in enumerate(names):
            s.add(
                Subscriber(
                    email=f"p{i}@example.org",
                    email_key=f"p{i}@example.org",
                    name=name,
                    status=SubscriberStatus.ACTIVE,
                    source=SubscriberSource.FORM,
                )
            )
    db.dispose()


def test_subscribers_list_prints_names_that_look_like_markup_as_typed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["[/bold]", "[link=https://evil.example]Click[/link]", ":smile: [red]x", "\x1b]0;t"]
    _insert_named(settings, names)
    # Wide enough that no name wraps inside its cell, whatever terminal ran the tests.
    monkeypatch.setattr(common.console, "_width", 200)

    r = runner.invoke(app, ["subscribers", "list"])

    assert r.exit_code == 0, r.output
    assert r.exception is None
    for shown in ("[/bold]", "[link=https://evil.example]Click[/link]", ":smile: [red]x"):
        assert shown in r.output
    assert "\x1b" not in r.output and "\\x1b]0;t" in r.output  # shown, not obeyed
    r = runner.invoke(app, ["subscribers", "add", "p0@example.org", "--confirmed"])
    assert r.exit_code == 0 and "p0@example.org is active" in r.output


def test_export_makes_formula_cells_safe_for_spreadsheets(
    settings: Settings, tmp_path: Path
) -> None:
    names = ['=HYPERLINK("https://evil.example","Click")', "+1", "-2", "@SUM(A1)", "\tTab", "Ann"]
    _insert_named(settings, names)
    out = tmp_path / "out.csv"

    r = runner.invoke(app, ["subscribers", "export", "-o", str(out)])

    assert r.exit_code == 0, r.output
    with out.open(newline="", encoding="utf-8") as fh:
        cells = [row["name"] for row in csv.DictReader(fh)]
    assert cells == [
        '\'=HYPERLINK("https://evil.example","Click")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tTab",
        "Ann",
    ]
    # JSON is data for programs, not a spreadsheet: values as stored.
    r = runner.invoke(app, ["subscribers", "export", "--format", "json"])
    assert [row["name"] for row in json.loads(r.stdout)] == names


def test_show_tells_the_whole_story_of_one_subscriber(settings: Settings) -> None:
    assert (
        runner.invoke(app, ["subscribers", "add", "kim@example.org", "--confirmed"]).exit_code == 0
    )
    db = Database(settings.database_url)
    with db.session() as s:
        sub = subscribers.find(s, "kim@example.org")
        assert sub is not None
        subscribers.suppress(s, sub.id, SubscriberStatus.COMPLAINED, cause=ChangeCause.EVENT)
    db.dispose()
    r = runner.invoke(app, ["subscribers", "show", "KIM@example.org"])
    assert r.exit_code == 0, r.output
    assert "kim@example.org" in r.output and "complained" in r.output
    assert "added as pending, by staff" in r.output
    assert "pending -> active, by staff" in r.output
    assert "active -> complained, by a mail event" in r.output
    assert "Soft bounces: 0 of 5" in r.output
    r = runner.invoke(app, ["subscribers", "show", "kim@example.org", "--json"])
    data = json.loads(r.output)
    assert data["status"] == "complained"
    assert [c["to"] for c in data["changes"]] == ["pending", "active", "complained"]
    assert data["consent"]["by"].startswith("staff")
    assert data["soft_bounces"] == {"score": 0, "limit": 5, "window_days": 30, "days": []}
    r = runner.invoke(app, ["subscribers", "show", "nobody@example.org"])
    assert r.exit_code == 1 and "No subscriber" in r.output


def test_add_refuses_a_complainer_unless_staff_vouch(settings: Settings) -> None:
    assert (
        runner.invoke(app, ["subscribers", "add", "lu@example.org", "--confirmed"]).exit_code == 0
    )
    db = Database(settings.database_url)
    with db.session() as s:
        sub = subscribers.find(s, "lu@example.org")
        assert sub is not None
        subscribers.suppress(s, sub.id, SubscriberStatus.COMPLAINED, cause=ChangeCause.EVENT)
    db.dispose()
    r = runner.invoke(app, ["subscribers", "add", "lu@example.org"])
    assert r.exit_code == 1
    assert "marked the digest as spam" in r.output and "--confirmed" in r.output
    assert outbox_messages(Path(settings.outbox_dir)) == []
    r = runner.invoke(app, ["subscribers", "add", "lu@example.org", "--confirmed"])
    assert r.exit_code == 0, r.output
    assert _all(settings)["lu@example.org"].status is SubscriberStatus.ACTIVE


def test_import_with_a_stray_quote_reports_that_row_and_keeps_the_next(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        'email,name\nsq1@example.com,"unterminated\nsq2@example.com,Two\nsq3@example.com,Three\n',
        encoding="utf-8",
    )
    r = runner.invoke(app, ["subscribers", "import", str(path)])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "list.csv, line 2: skipped 'sq1@example.com,\"unterminated'" in out
    assert "never closed" in out and "Added: 2" in out and "Bad rows (skipped): 1" in out
    rows = _all(settings)
    assert {k: v.name for k, v in rows.items()} == {
        "sq2@example.com": "Two",
        "sq3@example.com": "Three",
    }


@pytest.mark.parametrize("target", ["missing-folder/x.csv", "a-folder", "."])
def test_export_to_a_place_that_cannot_take_a_file_says_so_and_leaves_nothing(
    settings: Settings, tmp_path: Path, target: str
) -> None:
    runner.invoke(app, ["subscribers", "add", "x@example.org", "--name", "X", "--confirmed"])
    (tmp_path / "a-folder").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))  # the tests run in tmp_path

    r = runner.invoke(app, ["subscribers", "export", "-o", target])

    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert len(r.output.strip().splitlines()) == 1 and "Nothing was written" in r.output
    assert ("does not exist" in r.output) == (target == "missing-folder/x.csv")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no temporary copy anywhere
