"""The issue as staff wrote it, independent of any output format.

The parser (``content.source``) builds it from Markdown with front matter; the
renderer turns it into HTML and text; the importer writes the source from an archive
page. Line numbers are kept so that every problem can point at its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

# A BCP 47 language tag as far as an email's ``lang`` attribute needs: a 2–3 letter
# language, then subtags of 1–8 letters or digits (``en``, ``ja-JP``, ``zh-Hant-TW``,
# ``en-x-simple``; one-character subtags are BCP 47's extension and private-use marks).
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")

# The sizes of the stored issue's columns (``models.Issue`` declares them with these),
# which PostgreSQL enforces. Here so that ``issue check`` can hold an issue to them
# without loading the database layer.
SLUG_MAX = 120
PUBLICATION_MAX = 200
VOLUME_MAX = 32
TITLE_MAX = 300
SUBJECT_MAX = 300
PREHEADER_MAX = 300


@dataclass(frozen=True)
class HeroImage:
    url: str
    alt: str
    credit: str | None = None
    credit_url: str | None = None


@dataclass(frozen=True)
class Item:
    """One detail item: a paragraph of inline Markdown, optionally opening with a bold lead."""

    markdown: str
    line: int = 0


@dataclass(frozen=True)
class Issue:
    publication: str
    volume: str
    date: date | None
    headlines: tuple[str, ...]
    items: tuple[Item, ...]
    title: str | None = None
    preheader: str | None = None
    greeting: str | None = None
    hero: HeroImage | None = None
    # Image credit with no image: archive pages often name a source but lost the picture.
    image_credit: str | None = None
    about: str | None = None
    lang: str = "en"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """Stable identifier: publication and volume, e.g. ``us-japan-alliance-digest-2-19``."""
        base = f"{self.publication} {self.volume}".lower()
        return re.sub(r"[^a-z0-9]+", "-", base).strip("-")
