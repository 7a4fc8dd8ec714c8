"""Turn a past issue, as copied from the archive web page, into an issue source file.

The archive pages come in more than one shape: plain ``•`` bullets with no labels,
or a Markdown-like form with ``Headlines:``/``Details:`` labels, ``- `` bullets,
``**bold**`` and ``[links](#)`` whose addresses were lost. Either way the text is
surrounded by the web page's chrome (download links, breadcrumb, copyright, the
designer's credit). The importer reads the *structure* (a title with a volume number,
a run of short bullets, a run of long bullets, a closing paragraph) rather than one
page's exact wording, so that variations of the shapes import too. Whatever it cannot
place is named in the notes rather than silently dropped, and the result is run
through the checker so that the caller knows whether it is ready to use.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date as Date
from typing import Literal

import yaml

from digestmail.content.model import Issue
from digestmail.content.source import ParseResult, parse_issue


class ArchiveImportError(ValueError):
    """The text does not look like an archived issue; the message says what is missing.

    ``missing`` names a value the caller could supply instead (``"publication"``), so the
    command line or the admin can say how, in its own words.
    """

    def __init__(self, message: str, *, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass
class ImportResult:
    source: str
    notes: list[str] = field(default_factory=list)
    check: ParseResult = field(default_factory=lambda: ParseResult(None))

    @property
    def issue(self) -> Issue | None:
        return self.check.issue

    @property
    def ok(self) -> bool:
        return self.check.ok


# --- recognising lines -------------------------------------------------------------

_BULLET_RE = re.compile(r"^(?:[•\-*–—·▪●◦‣]|\d{1,2}[.)])\s+(?P<text>\S.*)$")
_VOLUME_RE = re.compile(
    r"\bvol(?:ume)?\b\.?\s*[:.#]?\s*(?:no\.?\s*)?(?P<vol>\d+(?:\.\d+)?)"
    r"(?:\s*[,/]?\s*(?:no|number|issue)\b\.?\s*[:.#]?\s*(?P<num>\d+))?",
    re.IGNORECASE,
)
_HEADLINES_RE = re.compile(
    r"^(?P<pre>.*?)\s*\b(?:headlines|top stories|in this issue)\s*(?::\s*|$)$", re.IGNORECASE
)
_DETAILS_RE = re.compile(r"^(?:details|in detail|the details|the stories)\s*:?$", re.IGNORECASE)
_CREDIT_RE = re.compile(
    r"^(?:(?:cover|header|hero|top)\s+)?(?:image|photo|picture|photograph)\s*"
    r"(?:source|credit|courtesy(?:\s+of)?|by)s?\s*[:\-–]?\s*(?P<credit>\S.*)$",
    re.IGNORECASE,
)
_IMAGE_RE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<url>[^)\s]*)(?:\s+\"[^\"]*\")?\)$")
_CHROME_RES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^download\b",
        r"^\(?pdf\)?$",
        r"^(?:home\s*[›»>/|]\s*)?publications?\b(?!\s*:)",
        r"^\d{4}\s+\S.*\|",
        r"\bwordpress\b",
        r"\b(?:web(?:site)?\s+)?design(?:ed)?\b.*\bby\b",
        r"\bpowered by\b",
        r"^(?:web)?site\s+(?:by|credits?)\b",
        r"^(?:share(?: this(?: page| publication)?)?|print(?: this page)?|e-?mail|tweet"
        r"|back to top|related publications|share on \w+)$",
    )
]
# Footer words: chrome on a short line or one that opens like a footer, but a real
# closing sentence that happens to mention a privacy policy is kept.
_FOOTER_RE = re.compile(
    r"(?:©|\(c\)|\bcopyright\b|\ball rights reserved\b|\bprivacy policy\b|\bsitemap\b"
    r"|\bterms of (?:use|service)\b)",
    re.IGNORECASE,
)
_FOOTER_START_RE = re.compile(r"^(?:©|\(c\)|copyright\b|\d{4}\b)", re.IGNORECASE)
_FOOTER_SHORT = 80
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_DATE_RES = [
    re.compile(r"\b(?P<m>[A-Za-z]{3,9})\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})\b"),
    re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?P<m>[A-Za-z]{3,9})\.?,?\s+(?P<y>\d{4})\b"),
    re.compile(r"\b(?P<y>\d{4})-(?P<mn>\d{1,2})-(?P<d>\d{1,2})\b"),
]
_WEEKDAYS_RE = re.compile(
    r"\b(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\b\.?", re.IGNORECASE
)
_MD_LINK_RE = re.compile(r"\[(?P<label>[^\[\]]*)\]\((?P<url>[^()\s]*)(?:\s+\"[^\"]*\")?\)")
_MD_MARKERS_RE = re.compile(r"\*\*[^*\n]+\*\*|\[[^\[\]\n]*\]\([^()\n]*\)")
_MD_ESCAPE_RE = re.compile(r"([\\`*_\[\]<])")
_TRAILING_CONTACT_RE = re.compile(
    r"\b(?:contact|email|e-mail|write to|at)\s*[:.]?\s*$", re.IGNORECASE
)
# Longer than any headline seen in the archive, shorter than any detail item.
_LONG = 200

LineKind = Literal["blank", "chrome", "bullet", "text"]


@dataclass
class _Line:
    number: int
    text: str
    kind: LineKind


@dataclass
class _Bullet:
    line: int
    text: str
    gap: int  # blank lines before it since the previous bullet (99: other text between)
    after_details_label: bool


# --- the importer -------------------------------------------------------------------


def import_archive(
    text: str, *, date: Date | None = None, publication: str | None = None
) -> ImportResult:
    """Convert archive text to issue source; raise :class:`ArchiveImportError` if hopeless.

    ``date`` is used when the archive has no date (and wins over the archive's when
    both are given); ``publication`` likewise names the publication.
    """
    return _Importer(text).run(date, publication)


class _Importer:
    def __init__(self, text: str) -> None:
        text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        text = html.unescape(text)
        text = re.sub(r"[\u00a0\u2007\u202f\t]", " ", text).replace("\u200b", "")
        self.lines = [self._classify(n, raw.strip()) for n, raw in enumerate(text.split("\n"), 1)]
        self.notes: list[str] = []
        self.header_publication: str | None = None
        self.chrome = [line for line in self.lines if line.kind == "chrome"]

    @staticmethod
    def _classify(number: int, text: str) -> _Line:
        if not text:
            return _Line(number, text, "blank")
        if _BULLET_RE.match(text):
            return _Line(number, text, "bullet")
        if len(text) <= 200 and any(r.search(text) for r in _CHROME_RES):
            return _Line(number, text, "chrome")
        if _FOOTER_RE.search(text) and (len(text) <= _FOOTER_SHORT or _FOOTER_START_RE.match(text)):
            return _Line(number, text, "chrome")
        return _Line(number, text, "text")

    def run(self, when: Date | None, publication: str | None) -> ImportResult:
        content = [line for line in self.lines if line.kind in ("bullet", "text")]
        if not content:
            raise ArchiveImportError("the archive text is empty (nothing but web page chrome)")
        body_at = next(
            (
                i
                for i, line in enumerate(content)
                if line.kind == "bullet"
                or _label(line.text, _HEADLINES_RE)
                or _label(line.text, _DETAILS_RE)
            ),
            None,
        )
        if body_at is None:
            raise ArchiveImportError(
                "no headlines found: expected a 'Headlines:' line or bullet lines "
                "(starting with '•', '-' or '*') after the title"
            )
        header = content[:body_at]
        self.credit: str | None = None
        self.image: tuple[str, str] | None = None
        self.greeting: list[str] = []
        self.dropped: list[_Line] = []
        pub, volume, found_date = self._header(header)
        self.header_publication = publication or pub
        headlines, details, about = self._body(body_at)

        pub = self._publication(pub, publication)
        when = self._date(found_date, when)
        markdown = bool(_MD_MARKERS_RE.search("\n".join(line.text for line in self.lines)))
        self.links_dropped = 0
        self.escaped = 0
        convert = self._from_markdown if markdown else self._escape

        front: dict[str, object] = {"publication": pub, "volume": volume}
        if when is not None:
            front["date"] = when
        if self.greeting:
            front["greeting"] = " ".join(self.greeting)
        credit, credit_url = self._credit(markdown)
        if self.image is not None:
            hero: dict[str, str] = {"url": self.image[0]}
            if self.image[1]:
                hero["alt"] = self.image[1]
            else:
                self.notes.append(
                    "the picture has no description: write one under hero as 'alt:' "
                    "(the check fails until you do)"
                )
            if credit:
                hero["credit"] = credit
            if credit_url:
                hero["credit_url"] = credit_url
            front["hero"] = hero
        elif credit:
            front["image_credit"] = credit
        out = [
            "---",
            yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000).rstrip(),
            "---",
            "",
            "## Headlines",
            "",
            *(f"- {convert(b.text)}" for b in headlines),
            "",
            "## Details",
            "",
            *(f"- {convert(b.text)}" for b in details),
        ]
        if about:
            out += ["", "## About", "", convert(about)]
        source = "\n".join(out) + "\n"
        self._final_notes(markdown, about)
        return ImportResult(source, self.notes, parse_issue(source))

    def _opens_about(self, text: str) -> bool:
        """A line that starts with the publication's name (quoted or not), as About does."""
        name = self.header_publication
        if not name:
            return False
        return text.lstrip("\"“‘'").lower().startswith(name.lower())

    # header ------------------------------------------------------------------------

    def _header(self, header: list[_Line]) -> tuple[str | None, str, Date | None]:
        vol_index = next((i for i, ln in enumerate(header) if _VOLUME_RE.search(ln.text)), None)
        if vol_index is None:
            opening = header or [ln for ln in self.lines if ln.kind != "blank"]
            first = opening[0].text if opening else "(nothing)"
            raise ArchiveImportError(
                "no volume number found before the headlines: expected a line like "
                f"'US-Japan Alliance Digest Vol 2.19' or 'Vol: 2.19' near the top "
                f"(the text starts with {first[:60]!r})"
            )
        vol_line = header[vol_index]
        match = _VOLUME_RE.search(vol_line.text)
        assert match is not None
        volume = match["vol"] + (f".{match['num']}" if match["num"] else "")
        pub: str | None = _clean_title(vol_line.text[: match.start()])
        found_date = _find_date(vol_line.text)
        before, after = header[:vol_index], header[vol_index + 1 :]
        if not pub:
            candidates = [ln for ln in before if not _is_date_line(ln.text) and not self._meta(ln)]
            if candidates:
                pub = _clean_title(candidates[-1].text)
                before = [ln for ln in before if ln is not candidates[-1]]
        for ln in [*before, *after]:
            if self._meta(ln):
                continue
            if _is_date_line(ln.text):
                found_date = found_date or _find_date(ln.text)
            elif ln in after:
                self.greeting.append(ln.text)
            else:
                self.dropped.append(ln)
        return pub or None, volume, found_date

    def _meta(self, line: _Line) -> bool:
        """Image credits and pictures may appear anywhere before the details."""
        credit = _CREDIT_RE.match(line.text)
        if credit:
            self.credit = credit["credit"].strip()
            return True
        image = _IMAGE_RE.match(line.text)
        if image:
            url = image["url"]
            if url.startswith(("https://", "http://")):
                self.image = (url, image["alt"].strip())
            else:
                self.notes.append(f"line {line.number}: the picture's address was lost; add it")
            return True
        return False

    def _publication(self, found: str | None, given: str | None) -> str:
        if given:
            if found and found != given:
                self.notes.append(
                    f"publication: using the given {given!r} (the archive says {found!r})"
                )
            return given
        if not found:
            raise ArchiveImportError(
                "no publication name found: expected it before the volume, as in "
                "'US-Japan Alliance Digest Vol 2.19'",
                missing="publication",
            )
        return found

    def _date(self, found: Date | None, given: Date | None) -> Date | None:
        if given is not None:
            if found is not None and found != given:
                self.notes.append(
                    f"date: using the given {given.isoformat()} "
                    f"(the archive says {found.isoformat()})"
                )
            return given
        if found is None:
            self.notes.append(
                "no date in the archive and none given: the date is left out "
                "(add 'date: YYYY-MM-DD' to the front matter)"
            )
        return found

    # body --------------------------------------------------------------------------

    def _body(self, start_at: int) -> tuple[list[_Bullet], list[_Bullet], str | None]:
        content = [line for line in self.lines if line.kind != "chrome"]
        first_number = [ln for ln in self.lines if ln.kind in ("bullet", "text")][start_at].number
        bullets: list[_Bullet] = []
        paragraphs: list[list[_Line]] = []  # text after the bullets began, by paragraph
        gap = 0
        details_label = False
        headlines_label = False
        previous: LineKind = "blank"
        for line in content:
            if line.number < first_number:
                continue
            if line.kind == "blank":
                gap += 1
                previous = "blank"
                continue
            if line.kind == "bullet":
                match = _BULLET_RE.match(line.text)
                assert match is not None
                bullets.append(_Bullet(line.number, match["text"], gap, details_label))
                gap = 0
            elif not bullets and not details_label and _label(line.text, _HEADLINES_RE):
                label = _label(line.text, _HEADLINES_RE)
                assert label is not None
                pre = _clean_title(label["pre"])
                if pre:
                    self.greeting.append(pre)
                headlines_label = True
            elif _label(line.text, _DETAILS_RE) and not details_label:
                details_label = True
                gap = 99
            elif not details_label and self._meta(line):
                pass
            elif previous == "bullet" and bullets and not paragraphs:
                if self._opens_about(line.text):
                    # The closing paragraph, with no blank line before it: do not let the
                    # last story swallow it.
                    paragraphs.append([line])
                    self.notes.append(
                        f"line {line.number} follows the last bullet without a blank line; "
                        "it names the publication, so it was taken as the About paragraph"
                    )
                else:
                    bullets[-1].text += " " + line.text  # a wrapped bullet
            elif previous == "text" and paragraphs:
                paragraphs[-1].append(line)
            else:
                paragraphs.append([line])
                gap = 99
            previous = line.kind
            if line.kind == "bullet" and paragraphs:
                # Text between bullets is neither headline nor detail: report, keep going.
                for para in paragraphs:
                    self.dropped.extend(para)
                paragraphs = []
        if not bullets:
            raise ArchiveImportError(
                "no headlines found: expected bullet lines (starting with '•', '-' or '*')"
                + (" after 'Headlines:'" if headlines_label else "")
            )
        headlines, details = self._split(bullets, details_label)
        about = " ".join(" ".join(ln.text for ln in para) for para in paragraphs) or None
        if len(paragraphs) > 1:
            self.notes.append(
                f"the closing text had {len(paragraphs)} paragraphs; they are joined into "
                "the one About paragraph"
            )
        return headlines, details, about

    def _split(
        self, bullets: list[_Bullet], details_label: bool
    ) -> tuple[list[_Bullet], list[_Bullet]]:
        """Tell headlines from details: by label, else by spacing, else by length."""
        if details_label:
            headlines = [b for b in bullets if not b.after_details_label]
            details = [b for b in bullets if b.after_details_label]
            if not headlines:
                raise ArchiveImportError("no headlines found before 'Details:'")
            if not details:
                raise ArchiveImportError("'Details:' is not followed by any bullet lines")
            return headlines, details
        if len(bullets) < 2:
            raise ArchiveImportError(
                f"found only one bullet (line {bullets[0].line}); an issue needs headlines "
                "and details"
            )
        by_gap = _split_by_gap(bullets)
        by_length = next(
            (
                k
                for k in range(1, len(bullets))
                if len(bullets[k].text) > _LONG and all(len(b.text) <= _LONG for b in bullets[:k])
            ),
            None,
        )
        choices = [k for k in (by_gap, by_length) if k is not None]
        if not choices:
            raise ArchiveImportError(
                f"cannot tell the headlines from the details among the {len(bullets)} "
                "bullets: add a line 'Details:' before the first detail item and import again"
            )
        balanced = [k for k in choices if 2 * k == len(bullets)]
        k = balanced[0] if balanced else choices[0]
        return bullets[:k], bullets[k:]

    def _credit(self, markdown: bool) -> tuple[str | None, str | None]:
        """The image credit as plain text (front matter is not Markdown), and its link."""
        if not self.credit:
            return None, None
        if not markdown:
            return self.credit, None
        link = _MD_LINK_RE.search(self.credit)
        url = link["url"].strip() if link else ""
        text = self._from_markdown(self.credit) if link else self.credit
        if link and url and not url.startswith("#"):
            text = _MD_LINK_RE.sub(lambda m: m["label"], self.credit)
        text = re.sub(r"(\*\*|__)", "", text).strip()
        return text, (url if url.startswith(("https://", "http://")) else None)

    def _escape(self, text: str) -> str:
        escaped = _escape(text)
        self.escaped += len(escaped) - len(text)
        return escaped

    def _from_markdown(self, text: str) -> str:
        """Keep the Markdown, but turn links whose address was lost into plain text."""

        def fix(match: re.Match[str]) -> str:
            url = match["url"].strip()
            if url == "" or url.startswith("#"):
                self.links_dropped += 1
                return match["label"]
            return match[0]

        return _MD_LINK_RE.sub(fix, text)

    def _final_notes(self, markdown: bool, about: str | None) -> None:
        if self.chrome:
            shown = "; ".join(repr(_short(ln.text)) for ln in self.chrome)
            self.notes.append(f"dropped {len(self.chrome)} lines of web page chrome: {shown}")
        for line in self.dropped:
            self.notes.append(
                f"line {line.number}: dropped text that is not part of any section: "
                f"{_short(line.text)!r}"
            )
        if self.links_dropped:
            self.notes.append(
                f"dropped {self.links_dropped} link{'s' if self.links_dropped != 1 else ''} "
                "whose address was lost ('#') and kept their text; add the addresses back as "
                "[text](https://…) if you have them"
            )
        if about is None:
            self.notes.append("no closing 'about this digest' paragraph found")
        elif _TRAILING_CONTACT_RE.search(about):
            self.notes.append(
                "the About paragraph ends with "
                f"{about.split()[-1]!r} and no address: the web page probably hid it; add it"
            )
        if self.escaped:
            self.notes.append(
                f"plain-text archive: {self.escaped} characters that Markdown would read as "
                "formatting were escaped with '\\'"
            )


# --- helpers --------------------------------------------------------------------------


def _label(text: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """Match a label line, ignoring Markdown decoration such as '## ' or '**…**'."""
    bare = re.sub(r"^#+\s*", "", text).strip()
    bare = re.sub(r"^(\*\*|__)(.*)\1$", r"\2", bare).strip()
    bare = re.sub(r"^(\*\*|__)(.*?)(:?)\1(:?)$", r"\2\3\4", bare).strip()
    if len(bare) > 80:
        return None
    return pattern.match(bare)


def _clean_title(text: str) -> str:
    return text.strip().strip("-–—|:,#*").strip()


def _find_date(text: str) -> Date | None:
    for pattern in _DATE_RES:
        for match in pattern.finditer(text):
            try:
                month = (
                    int(match["mn"])
                    if "mn" in pattern.groupindex
                    else _MONTHS[match["m"].lower().rstrip(".")]
                )
                return Date(int(match["y"]), month, int(match["d"]))
            except (KeyError, ValueError):
                continue
    return None


def _is_date_line(text: str) -> bool:
    """A line that holds a date and nothing else but a weekday and punctuation."""
    if _find_date(text) is None:
        return False
    rest = text
    for pattern in _DATE_RES:
        rest = pattern.sub("", rest)
    rest = _WEEKDAYS_RE.sub("", rest)
    rest = re.sub(r"^\s*(?:published|posted|dated?|issued)(?:\s+on)?\s*:?", "", rest, flags=re.I)
    return not rest.strip(" ,.-–—|/()")


def _split_by_gap(bullets: list[_Bullet]) -> int | None:
    """The one place where the spacing between bullets is wider than anywhere else."""
    gaps = [b.gap for b in bullets[1:]]
    widest = max(gaps)
    if gaps.count(widest) == 1 and widest > min(gaps):
        return gaps.index(widest) + 1
    return None


def _escape(text: str) -> str:
    """Make plain archive text safe to read as Markdown (nothing turns bold or into a link)."""
    escaped = _MD_ESCAPE_RE.sub(r"\\\1", text)
    escaped = re.sub(r"&(?=#?\w+;)", r"\\&", escaped)
    escaped = re.sub(r"^(\d+)([.)])(\s)", r"\1\\\2\3", escaped)
    return re.sub(r"^([#+\-=>])", r"\\\1", escaped)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
