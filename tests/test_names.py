"""Names: one rule for what the list stores and what an issue greets."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.names import NAME_MAX, clean_name


def test_clean_name() -> None:
    assert clean_name(" a\x00b \n c ") == "a b c"
    assert clean_name("   ") is None
    assert len(clean_name("x" * 500) or "") == NAME_MAX
    assert clean_name("a" * (NAME_MAX - 1) + " bc") == "a" * (NAME_MAX - 1)  # cut at a space
    assert clean_name("Ann  Smith") == "Ann Smith"
    assert clean_name(" Ann") == "Ann"
    assert clean_name("Ann ") == "Ann"
    assert clean_name("Ann\u00a0Smith") == "Ann Smith"  # a no-break space is a space
    assert clean_name("Zoe\u0301") == "Zo\u00e9"  # NFC


def _rule(raw: str | None) -> str | None:
    """The rule written plainly: NFC; control characters and line separators become
    spaces; other invisible formats go except the zero-width joiners; single spaces;
    at most NAME_MAX characters; None when nothing is left."""
    if not raw:
        return None
    out = []
    for ch in unicodedata.normalize("NFC", raw):
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif cat in ("Cf", "Cs") and ch not in ("\u200c", "\u200d"):
            continue
        else:
            out.append(ch)
    name = " ".join("".join(out).split())[:NAME_MAX].rstrip()
    return name or None


_names = (
    st.text(st.sampled_from("An é'-"), max_size=12)  # printable: spaces decide
    | st.text(
        st.sampled_from(" \t\n\x00\u00a0\u2028\u200c\u200d\u202e\xad") | st.characters(),
        max_size=60,
    )
    | st.text(st.sampled_from("ab"), min_size=NAME_MAX - 3, max_size=NAME_MAX + 3)  # long
    | st.text(st.sampled_from("ab "), min_size=NAME_MAX - 3, max_size=NAME_MAX + 3)
)


@settings(max_examples=500)
@given(raw=st.none() | _names)
def test_property_clean_name_is_the_rule(raw: str | None) -> None:
    """The shortcut for names already clean gives what the plain rule gives, for any
    text: spaces at either end or doubled, any script, invisible characters, long. What
    it gives is single-spaced, also when the cut to length falls after a space."""
    name = clean_name(raw)
    assert name == _rule(raw)
    assert name is None or name == " ".join(name.split())
