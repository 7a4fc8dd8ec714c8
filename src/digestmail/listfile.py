"""Subscriber lists as files: the CSV staff import, and the CSV or JSON they export.

Below the CLI so that the admin reuses it: nothing here prints, exits or names a
command. Whatever a file holds, reading it raises only ``ListFileError`` (the file as
a whole cannot be used: not UTF-8, no ``email`` column) and otherwise returns every
row either as a row to import or as a bad row with its line and the reason.

Exported cells are made safe to open in a spreadsheet: a cell that starts like a
formula (``=``, ``+``, ``-``, ``@``, tab, carriage return, as OWASP's CSV injection
guidance lists) gets a leading apostrophe, which spreadsheet programs show as text.
Reading a file undoes exactly that, so an export imports back unchanged.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from digestmail.models import Subscriber
from digestmail.subscribers import BadRow, ImportRow

EXPORT_FIELDS = (
    "id",
    "email",
    "name",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "consent_at",
    "consent_ip",
    "consent_by",
    "consent_text",
)


class Problem(StrEnum):
    """Why a whole file cannot be used (a bad row is reported and skipped instead)."""

    NOT_UTF8 = "not_utf8"  # line: the first line with bytes that are not UTF-8
    EMPTY = "empty"
    HEADER_UNREADABLE = "header_unreadable"  # the first line is not CSV
    NO_EMAIL_COLUMN = "no_email_column"  # detail: the columns found
    TARGET_IS_FOLDER = "target_is_folder"  # an export named a folder, not a file
    NO_SUCH_FOLDER = "no_such_folder"  # an export into a folder that does not exist
    CANNOT_WRITE = "cannot_write"  # detail: the system's reason


class ListFileError(ValueError):
    """A list file that cannot be read, or an export that cannot be written; nothing was."""

    def __init__(self, problem: Problem, *, line: int | None = None, detail: str = "") -> None:
        super().__init__(
            f"{problem.value}"
            + (f" at line {line}" if line else "")
            + (f": {detail}" if detail else "")
        )
        self.problem = problem
        self.line = line
        self.detail = detail


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


# A cell a spreadsheet would run as a formula, or one of ours already made safe
# (apostrophes then a formula start): both get one more apostrophe, so that taking
# one off on the way back in gives the original whatever it was.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet will show it, never run it (OWASP: CSV injection)."""
    return "'" + cell if _FORMULA.match(cell) else cell


def restore(cell: str) -> str:
    """The cell ``neutralise`` was given: one leading apostrophe off a made-safe cell."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell, 1) else cell


def export_record(sub: Subscriber) -> dict[str, Any]:
    """One subscriber as an export row: plain values (ISO times, status names)."""
    out: dict[str, Any] = {}
    for name in EXPORT_FIELDS:
        value = getattr(sub, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, StrEnum):
            value = value.value
        out[name] = value
    return out


def write_export(out: TextIO, fmt: ExportFormat, subs: Iterable[Subscriber]) -> int:
    """Write every subscriber to ``out`` as CSV (safe cells) or JSON; returns how many."""
    count = 0
    if fmt is ExportFormat.CSV:
        writer = csv.writer(out)
        writer.writerow(EXPORT_FIELDS)
        for sub in subs:
            record = export_record(sub)
            writer.writerow(neutralise(v) if isinstance(v, str) else v for v in record.values())
            count += 1
        return count
    out.write("[")
    for sub in subs:
        out.write(",\n " if count else "\n ")
        out.write(json.dumps(export_record(sub), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


# --- reading a staff CSV -----------------------------------------------------------------

# What the csv module says, in words a person with a spreadsheet can act on.
_CSV_ERRORS = {
    "unexpected end of data": 'a quote mark (") is opened and never closed',
    "',' expected after '\"'": 'text follows a closing quote mark (") in a cell',
}


@dataclass
class ReadList:
    """A staff CSV read: rows to import, and rows that are not, each with its line."""

    rows: list[ImportRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


class _Lines:
    """The file's physical lines, fed to a csv reader, counting where it is."""

    def __init__(self, lines: list[str], start: int) -> None:
        self.lines = lines
        self.pos = start

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _records(lines: list[str]) -> Iterator[tuple[int, list[str] | str]]:
    """(first line number, cells) for each record, or (line, reason) for one that is not CSV.

    Strict: a quote mark that is never closed, or text after a closing one, is an error
    rather than a cell that swallows the following rows. After an error, reading starts
    again on the line after the bad record's first, so one stray quote costs one row.
    """
    pos = 0
    while pos < len(lines):
        feed = _Lines(lines, pos)
        reader = csv.reader(feed, strict=True)
        while True:
            start = feed.pos
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                text = str(exc)
                yield start + 1, f"not readable as CSV: {_CSV_ERRORS.get(text, text)}"
                pos = start + 1
                break
            if feed.pos - start > 1 and any("@" in line for line in lines[start + 1 : feed.pos]):
                # A quoted cell ran over lines that look like rows of their own: a
                # stray quote mark closed by another one further down, most likely.
                yield (
                    start + 1,
                    (
                        f'a quote mark (") on this line is closed only on line {feed.pos}; '
                        "the lines between look like rows of their own"
                    ),
                )
                pos = start + 1
                break
            yield start + 1, row


def read_csv(data: bytes) -> ReadList:
    """A staff CSV file (UTF-8, a header line naming ``email`` and maybe ``name``).

    The whole file is decoded first, so a wrong encoding is reported with the line it
    is on (and nothing is imported) instead of surfacing half-way through. A row that
    cannot be read as CSV (a field over the csv module's 128 KiB limit, a stray quote)
    is reported with its line and skipped; the rows after it are still read. Cells made
    safe by an export (``neutralise``) are restored. Raises ``ListFileError`` only for
    a file that cannot be used at all.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ListFileError(Problem.NOT_UTF8, line=line, detail=exc.reason) from None
    lines = io.StringIO(text, newline="").readlines()
    records = _records(lines)
    first = next(records, None)
    if first is None:
        raise ListFileError(Problem.EMPTY)
    line, header = first
    if isinstance(header, str):
        raise ListFileError(Problem.HEADER_UNREADABLE, line=1, detail=header)
    columns = [h.strip().lower() for h in header]
    if "email" not in columns:
        found = ", ".join(repr(h.strip()) for h in header[:10])
        raise ListFileError(Problem.NO_EMAIL_COLUMN, line=1, detail=found)
    email_at = columns.index("email")
    name_at = columns.index("name") if "name" in columns else None
    out = ReadList()
    for line, row in records:
        if isinstance(row, str):
            raw = lines[line - 1].rstrip("\r\n")
            out.bad.append(BadRow(line, raw, row))
            continue
        if not any(cell.strip() for cell in row):
            continue
        out.rows.append(
            ImportRow(
                line=line,
                email=restore(row[email_at]) if email_at < len(row) else "",
                name=restore(row[name_at]) if name_at is not None and name_at < len(row) else None,
            )
        )
    return out


# --- writing an export -------------------------------------------------------------------


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """A text file that becomes ``path`` only once it is complete.

    It is written beside ``path`` (same folder, same file system, so the final rename is
    atomic), readable by its owner only (it holds personal data), and removed if anything
    fails, so no half export and no stray copy of the list is ever left behind. A folder,
    or a folder that does not exist, is refused before anything is written.
    """
    if path.is_dir():
        raise ListFileError(Problem.TARGET_IS_FOLDER, detail=str(path))
    folder = path.parent
    if not folder.is_dir():
        raise ListFileError(Problem.NO_SUCH_FOLDER, detail=str(folder))
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ListFileError(Problem.CANNOT_WRITE, detail=exc.strerror or str(exc)) from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ListFileError(Problem.CANNOT_WRITE, detail=exc.strerror or str(exc)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
