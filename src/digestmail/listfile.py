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

import csv
import json
import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, TextIO

from digestmail.models import Subscriber

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
