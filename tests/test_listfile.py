"""Subscriber lists as files: the CSV staff import and the export they open elsewhere."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.listfile import neutralise, restore

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
