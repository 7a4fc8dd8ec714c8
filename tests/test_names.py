"""Names: one rule for what the list stores and what an issue greets."""

from __future__ import annotations

from digestmail.names import NAME_MAX, clean_name


def test_clean_name() -> None:
    assert clean_name(" a\x00b \n c ") == "a b c"
    assert clean_name("   ") is None
    assert len(clean_name("x" * 500) or "") == NAME_MAX
