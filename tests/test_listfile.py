"""Subscriber lists as files: the CSV staff import and the export they open elsewhere."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.listfile import (
    ListFileError,
    Problem,
    neutralise,
    read_csv,
    replacing,
    restore,
)
from digestmail.models import Subscriber
from digestmail.subscribers import import_rows

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_neutralised_cell_never_starts_a_formula_and_comes_back_unchanged(cell: str) -> None:
    safe = neutralise(cell)
    assert not safe.startswith(FORMULA_STARTS)
    assert restore(safe) == cell
    # Through a real CSV file and back, as a spreadsheet export would go.
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe])
    (read,) = csv.reader(io.StringIO(buffer.getvalue()))
    assert restore(read[0]) == cell


def test_cells_that_start_like_formulas_get_an_apostrophe() -> None:
    assert neutralise('=HYPERLINK("https://evil.example","x")') == (
        '\'=HYPERLINK("https://evil.example","x")'
    )
    for start in FORMULA_STARTS:
        assert neutralise(f"{start}1") == f"'{start}1"
    assert neutralise("Ann") == "Ann" and neutralise("") == ""
    assert neutralise("'=x") == "''=x"  # already made safe: stays reversible
    assert restore("'quoted") == "'quoted"  # an apostrophe that made nothing safe stays


# --- reading a staff CSV ------------------------------------------------------------------


def _csv(rows: list[tuple[str, str]]) -> tuple[bytes, list[int]]:
    """A file as a spreadsheet would export it, and the line each row starts on."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name"])
    starts = []
    for email, name in rows:
        # Lines as the reader counts them (as editors do: CR, LF or CRLF ends one).
        starts.append(len(io.StringIO(buffer.getvalue(), newline="").readlines()) + 1)
        writer.writerow([neutralise(email), neutralise(name)])
    return buffer.getvalue().encode("utf-8"), starts


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda t: t.encode("utf-8")))
def test_whatever_the_file_holds_reading_it_raises_nothing_but_a_list_file_error(
    data: bytes,
) -> None:
    try:
        read = read_csv(b"email,name\n" + data)
    except ListFileError as exc:
        assert exc.problem is Problem.NOT_UTF8 and exc.line is not None  # says where
        return
    lines = [r.line for r in read.rows] + [b.line for b in read.bad]
    assert len(lines) == len(set(lines))  # one report per record
    assert all(2 <= n <= data.count(b"\n") + data.count(b"\r") + 2 for n in lines)
    assert all(b.reason for b in read.bad)  # what is refused says why


_cell = st.text(st.characters(blacklist_characters="@", blacklist_categories=("Cs",)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_cell.filter(lambda e: e.strip() != ""), _cell), max_size=12))
def test_every_row_a_spreadsheet_writes_is_read_back_as_written(
    rows: list[tuple[str, str]],
) -> None:
    data, starts = _csv(rows)
    read = read_csv(data)
    assert read.bad == []
    assert [(r.line, r.email, r.name or "") for r in read.rows] == [
        (line, email, name) for line, (email, name) in zip(starts, rows, strict=True)
    ]


_plain = st.text("abcdefghij .'-", min_size=1, max_size=12).filter(lambda t: t.strip() != "")


@settings(max_examples=150, deadline=None)
@given(st.lists(_plain, min_size=2, max_size=10), st.data())
def test_a_stray_quote_costs_its_own_row_and_never_swallows_the_next(
    names: list[str], data: st.DataObject
) -> None:
    rows = [(f"reader{i}@example.org", name) for i, name in enumerate(names)]
    broken = data.draw(st.integers(0, len(rows) - 1))
    lines = ["email,name"] + [f"{email},{neutralise(name)}" for email, name in rows]
    lines[broken + 1] = f'{rows[broken][0]},"{rows[broken][1]}'  # opened, never closed
    read = read_csv(("\n".join(lines) + "\n").encode())

    assert [(b.line, b.value) for b in read.bad] == [(broken + 2, lines[broken + 1])]
    assert 'quote mark (") is opened and never closed' in read.bad[0].reason
    assert [(r.line, r.email, r.name) for r in read.rows] == [
        (i + 2, email, name) for i, (email, name) in enumerate(rows) if i != broken
    ]


def test_a_quote_closed_rows_later_is_reported_instead_of_merging_the_rows_between() -> None:
    text = 'email,name\na@example.org,"Ann\nb@example.org,Bob\nc@example.org,Cy"\nd@x.org,D\n'
    read = read_csv(text.encode())
    assert [(b.line, b.reason) for b in read.bad] == [
        (
            2,
            'a quote mark (") on this line is closed only on line 4; the lines between '
            "look like rows of their own",
        )
    ]
    assert [(r.line, r.email, r.name) for r in read.rows] == [
        (3, "b@example.org", "Bob"),
        (4, "c@example.org", 'Cy"'),  # a quote inside a cell is only a character
        (5, "d@x.org", "D"),
    ]
    read = read_csv(b'email,name\na@example.org,"Ann"x\nb@example.org,B\n')
    assert [(b.line, b.reason) for b in read.bad] == [
        (2, 'not readable as CSV: text follows a closing quote mark (") in a cell')
    ]
    # A name that really runs over two lines (no address in it) is kept whole.
    read = read_csv(b'email,name\na@example.org,"Ann\nSmith"\n')
    assert [(r.line, r.name) for r in read.rows] == [(2, "Ann\nSmith")] and read.bad == []


@pytest.mark.parametrize(
    ("data", "problem", "line"),
    [
        (b"", Problem.EMPTY, None),
        (b"address,name\na@example.org,A\n", Problem.NO_EMAIL_COLUMN, 1),
        (b'"email\n', Problem.HEADER_UNREADABLE, 1),
        ("email\nbø@example.org\n".encode("latin-1"), Problem.NOT_UTF8, 2),
    ],
)
def test_a_file_that_cannot_be_used_at_all_says_why_and_where(
    data: bytes, problem: Problem, line: int | None
) -> None:
    with pytest.raises(ListFileError) as raised:
        read_csv(data)
    assert raised.value.problem is problem and raised.value.line == line


# --- writing an export ---------------------------------------------------------------------


def test_an_export_target_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with replacing(target) as fh:
        fh.write("email\n")
        assert not target.exists()  # only once complete
    assert target.read_text() == "email\n" and oct(target.stat().st_mode & 0o777) == "0o600"

    with pytest.raises(RuntimeError), replacing(target) as fh:
        fh.write("half")
        raise RuntimeError("the database went away")
    assert target.read_text() == "email\n"  # the old one stays; no half export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # and no copy left

    for bad, problem in (
        (tmp_path, Problem.TARGET_IS_FOLDER),
        (tmp_path / "no" / "x.csv", Problem.NO_SUCH_FOLDER),
    ):
        with pytest.raises(ListFileError) as raised, replacing(bad):
            raise AssertionError("never opened")
        assert raised.value.problem is problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


# --- the whole import, on both databases -----------------------------------------------------

_address = st.one_of(
    st.emails(),
    st.text(max_size=40),
    st.builds(lambda local: f"{local}@example.org", st.text(min_size=1, max_size=80)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(_address, st.text(max_size=300)), max_size=15))
def test_every_row_imported_is_stored_and_every_other_is_counted_or_reported(
    database: Database, settings: Settings, rows: list[tuple[str, str]]
) -> None:
    data, _ = _csv(rows)
    read = read_csv(data)
    with database.session() as session:
        report = import_rows(
            session,
            read.rows,
            double_opt_in=False,
            staff="staff:test",
            source_label="list.csv",
            settings=settings,
        )
    accounted = report.existing + report.duplicates + report.erased + len(report.bad)
    assert len(report.added) + accounted == len(read.rows)
    assert all(b.reason for b in report.bad)
    with database.session() as session:
        stored = {s.id: s.email for s in session.scalars(select(Subscriber))}
    assert all(stored.get(sid) == email for sid, email in report.added)
