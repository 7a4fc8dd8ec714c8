"""Subscribers' names: the one rule for what the list stores and greets.

A module of its own so that whatever greets (the renderer, a campaign building each
recipient's values) need not load the subscriber store and its database layer.
"""

from __future__ import annotations

import unicodedata

NAME_MAX = 200
# Unicode categories in names: separators that read as a break, and invisible formats.
_SPACED = frozenset({"Cc", "Zl", "Zp"})
_DROPPED = frozenset({"Cf", "Cs"})
_JOINERS = frozenset({"\u200c", "\u200d"})


def clean_name(raw: str | None) -> str | None:
    """A name as it is stored and greeted: single-spaced, no invisible characters, fits.

    Control characters and line separators become spaces; other invisible format
    characters (bidi overrides, soft hyphens) are dropped, except the zero-width
    joiners that some scripts (Persian, Indic) and emoji need. None when nothing is left.
    The one rule for names: the list stores what it greets.
    """
    if not raw:
        return None
    # A send cleans every recipient's name: the usual one (ASCII, already single-spaced)
    # is known clean after a few C calls. ASCII is its own NFC; in a printable name the
    # only whitespace is the space, so it is single-spaced unless one of these says not.
    name = raw if raw.isascii() else unicodedata.normalize("NFC", raw)
    if not name.isprintable():
        name = "".join(
            " " if cat in _SPACED else "" if cat in _DROPPED and ch not in _JOINERS else ch
            for ch, cat in ((ch, unicodedata.category(ch)) for ch in name)
        )
    elif len(name) <= NAME_MAX and name[0] != " " and name[-1] != " " and "  " not in name:
        return name
    # Cut to length, then single-spaced again: the cut may end on a space.
    name = " ".join(name.split())[:NAME_MAX].rstrip()
    return name or None
