"""Read an issue source file (YAML front matter + Markdown body) and check it.

Staff write these files by hand, so the checker's job is to point at the exact line
of every mistake in words a non-programmer can act on, and to report *all* of them in
one pass rather than stopping at the first. Line numbers are always those of the file
as it sits in the editor, front matter included.

The format (documented in README.md, "Issue source format")::

    ---
    publication: US-Japan Alliance Digest
    volume: "2.19"
    date: 2023-10-13
    hero:
      url: https://…/hero.jpg    # or the file name of a picture in the media folder
      alt: What the picture shows
      credit: Who took it
    ---

    ## Headlines
    - One line per story

    ## Details
    - **Bold lead** then the paragraph, with [links](https://…).

    ## About
    The closing "about this digest" paragraph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from digestmail.content import model as limits
from digestmail.content.model import LANGUAGE_TAG as _LANG_RE
from digestmail.content.model import HeroImage, Issue, Item
from digestmail.media import MediaError, MediaStore, is_reference, media_name
from digestmail.placeholders import Template
from digestmail.render import default_preheader, default_subject
from digestmail.transports.base import MAX_LINE, TEST_SUBJECT_PREFIX

Severity = Literal["error", "warning"]

SECTIONS = ("Headlines", "Details", "About")
FIELDS = (
    "publication",
    "volume",
    "date",
    "title",
    "preheader",
    "greeting",
    "hero",
    "image_credit",
    "lang",
)
HERO_FIELDS = ("url", "alt", "credit", "credit_url")

_YAML_NULL = "tag:yaml.org,2002:null"
# python-frontmatter's own boundary is ``^-{3,}\s*$``, whose ``\s`` also swallows the
# following blank lines and would shift every line number after it.
_BOUNDARY = re.compile(r"^-{3,}[ \t]*$", re.MULTILINE)
_BROKEN_LINK_RE = re.compile(r"\]\s*\(|\]\s+\(")
# The longest subject (and so title) an issue may have: what its columns hold, and
# what fits on one Subject header line of a test send, prefix included.
SUBJECT_MAX = min(
    limits.SUBJECT_MAX,
    limits.TITLE_MAX,
    MAX_LINE - len(f"Subject: {TEST_SUBJECT_PREFIX}\r\n"),
)
# Characters no issue can hold: PostgreSQL stores no NUL, the HTML part is XML to the
# MJML compiler (no other C0 control but tab and newlines), and a lone surrogate is no
# character at all.
_UNUSABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Front matter is 'name: value' lines and hero's indented fields; anything nested much
# deeper is a mistake, and thousands of levels would exhaust the YAML reader's stack.
_MAX_NESTING = 20
_QUOTE_HINT = (
    " (if a value contains ': ' or starts with a quote mark, put the whole value in double quotes)"
)


@dataclass(frozen=True, order=True)
class Problem:
    """One finding of the checker, pointing at a line of the file (1-based)."""

    line: int
    severity: Severity
    message: str

    def format(self, path: str | None = None) -> str:
        """``FILE:LINE: severity: message``, the form editors and CI logs understand."""
        return f"{path or '<issue>'}:{self.line}: {self.severity}: {self.message}"


@dataclass
class ParseResult:
    issue: Issue | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.issue is not None and not self.errors


class IssueSourceError(ValueError):
    """The file cannot be used as an issue; ``problems`` says why, line by line."""

    def __init__(self, path: str | None, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = [p.format(path) for p in self.problems]
        count = len([p for p in self.problems if p.severity == "error"])
        head = f"{path or 'issue source'}: {count} error{'s' if count != 1 else ''}"
        super().__init__("\n".join([head, *lines]))


def load_issue(path: str | Path, *, media: MediaStore | None = None) -> Issue:
    """Read and check an issue source file; raise :class:`IssueSourceError` if it has errors.

    ``media``: the media folder a hero picture given by file name must be in (not
    checked when None).
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise IssueSourceError(name, [Problem(1, "error", f"cannot read the file: {exc}")]) from exc
    return checked_issue(decode_source(raw, path=name), path=name, media=media)


def decode_source(raw: bytes, *, path: str | None = None) -> str:
    """An issue file's bytes as text; :class:`IssueSourceError` naming the line if not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IssueSourceError(
            path, [Problem(line, "error", "the file is not UTF-8 text; save it as UTF-8")]
        ) from exc


def checked_issue(text: str, *, path: str | None = None, media: MediaStore | None = None) -> Issue:
    """The issue a source text describes; :class:`IssueSourceError` if it has errors."""
    result = parse_issue(text, path=path, media=media)
    if result.issue is None or result.errors:
        raise IssueSourceError(path, result.errors)
    return result.issue


def parse_issue(
    text: str, *, path: str | None = None, media: MediaStore | None = None
) -> ParseResult:
    """Parse and check an issue source; every problem found is reported, not only the first.

    With ``media``, a hero picture given by file name must exist in that folder.
    """
    return _Parser(text, path, media).run()


# --- implementation ------------------------------------------------------------------


@dataclass
class _Body:
    headlines: list[str] | None = None
    headlines_line: int = 0
    first_headline_line: int = 0
    items: list[Item] | None = None
    details_line: int = 0
    about: str | None = None
    about_line: int = 0


class _Parser:
    def __init__(self, text: str, path: str | None, media: MediaStore | None = None) -> None:
        self.media = media
        self.text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.path = path
        self.problems: list[Problem] = []
        self.n_lines = max(1, len(self.text.splitlines()))

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(max(1, min(line, self.n_lines)), "error", message))

    def warn(self, line: int, message: str) -> None:
        self.problems.append(Problem(max(1, min(line, self.n_lines)), "warning", message))

    def run(self) -> ParseResult:
        self._characters()
        front, front_start, body, body_start = self._split()
        fields = self._front_matter(front, front_start) if front is not None else None
        parsed = self._body(body, body_start) if body is not None else _Body()
        issue = self._build(fields, parsed) if fields is not None else None
        self.problems.sort()
        if any(p.severity == "error" for p in self.problems):
            issue = None
        return ParseResult(issue, self.problems)

    def _characters(self) -> None:
        """What no field may hold, wherever it is: control characters, per-reader tokens."""
        for number, line in enumerate(self.text.split("\n"), start=1):
            found = _UNUSABLE.search(line)
            if found:
                self.error(number, f"this line holds {_unusable(found.group())}")
            fields = Template.parse(line).fields
            if fields:
                shown = ", ".join(f"%%{name}%%" for name in sorted(fields))
                self.error(
                    number,
                    f"{shown} is filled in for each reader by the email template and cannot "
                    "be written into an issue; remove it",
                )

    # front matter ------------------------------------------------------------------

    def _split(self) -> tuple[str | None, int, str | None, int]:
        """Cut the text into front matter and body, remembering where each starts."""
        boundary = _BOUNDARY
        first = boundary.match(self.text)
        if first is None:
            self.error(
                1,
                "the file must begin with front matter: a line '---', the fields "
                "(publication, volume, date, …), then another line '---'",
            )
            return None, 1, self.text, 1
        closing = boundary.search(self.text, first.end())
        if closing is None:
            self.error(1, "the front matter opened by '---' on line 1 is never closed by '---'")
            return None, 1, None, self.n_lines
        front = self.text[first.end() + 1 : closing.start()]
        body = self.text[closing.end() :]
        body_start = self.text.count("\n", 0, closing.end()) + 1
        # The body text starts with the newline that ends the closing '---' line.
        return front, 2, body, body_start

    def _front_matter(self, front: str, start: int) -> dict[str, object] | None:
        if self._nested_too_deeply(front, start):
            return None
        try:
            loader = yaml.SafeLoader(front)
        except yaml.reader.ReaderError as exc:
            # PyYAML refuses control characters up front, before any mark exists.
            line = start + front.count("\n", 0, max(0, exc.position))
            if not _UNUSABLE.match(chr(exc.character)):  # else reported with its line already
                self.error(
                    line,
                    f"the front matter holds a control character (#x{exc.character:04x}) "
                    "that is not allowed there; delete it",
                )
            return None
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            what = exc.problem or exc.context or "unreadable"
            mark = exc.problem_mark or exc.context_mark
            if exc.context_mark is not None and "end of stream" in what:
                # An unclosed quote is found at the end; its opening is the useful place.
                mark = exc.context_mark
                what = f"{exc.context}, which is never closed"
            line = start + (mark.line if mark else 0)
            self.error(line, f"the front matter is not valid YAML: {what}{_QUOTE_HINT}")
            return None
        except yaml.YAMLError as exc:
            self.error(start, f"the front matter is not valid YAML: {exc}")
            return None
        finally:
            loader.dispose()
        if node is None:
            self.error(start - 1, "the front matter is empty: add publication and volume")
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(
                start + node.start_mark.line,
                "the front matter must be a list of 'name: value' lines",
            )
            return None
        return self._fields(node, start)

    def _nested_too_deeply(self, front: str, start: int) -> bool:
        """Refuse absurd nesting before building the tree (which recurses per level)."""
        depth = 0
        try:
            for event in yaml.parse(front, Loader=yaml.SafeLoader):
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > _MAX_NESTING:
                        mark = event.start_mark
                        self.error(
                            start + (mark.line if mark else 0),
                            f"the front matter is nested more than {_MAX_NESTING} levels deep; "
                            "it holds 'name: value' lines, and hero's fields indented below it",
                        )
                        return True
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
        except yaml.YAMLError:
            return False  # reported, with its line, when the tree is built
        return False

    def _fields(self, node: yaml.MappingNode, start: int) -> dict[str, object]:
        values: dict[str, object] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = start + key_node.start_mark.line
            key = str(key_node.value)
            if key in lines:
                self.error(line, f"'{key}' is given twice (first on line {lines[key]})")
                continue
            lines[key] = line
            if key not in FIELDS:
                self.warn(
                    line,
                    f"unknown field '{key}' is ignored; the fields are: {', '.join(FIELDS)}",
                )
                continue
            if key == "hero":
                values[key] = self._hero(value_node, line, start)
            else:
                values[key] = self._scalar(key, value_node, line)
        values["_lines"] = lines
        return values

    def _scalar(self, key: str, node: yaml.Node, line: int) -> str | None:
        """The value exactly as written: "2.10" stays "2.10", "yes" stays "yes"."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(line, f"'{key}' must be a single value, not a list or nested fields")
            return None
        if node.tag == _YAML_NULL:
            return None
        value = str(node.value).strip()
        # YAML escapes in double quotes can spell what no file holds: "\0" is a NUL,
        # and "\ud83d\ude00" two halves of one character, which belong together.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        found = _UNUSABLE.search(value)
        if found:
            self.error(line, f"'{key}' holds an escape that stands for {_unusable(found.group())}")
            return None
        return value or None

    def _hero(self, node: yaml.Node, line: int, start: int) -> dict[str, tuple[str | None, int]]:
        if node.tag == _YAML_NULL:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(
                line,
                "'hero' must have its fields on indented lines below it: "
                "'  url: https://…', '  alt: …', '  credit: …'",
            )
            return {}
        hero: dict[str, tuple[str | None, int]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_line = start + key_node.start_mark.line
            if key not in HERO_FIELDS:
                self.warn(
                    key_line,
                    f"unknown hero field '{key}' is ignored; "
                    f"the hero fields are: {', '.join(HERO_FIELDS)}",
                )
                continue
            hero[key] = (self._scalar(f"hero {key}", value_node, key_line), key_line)
        return hero

    # body --------------------------------------------------------------------------

    def _body(self, body: str, body_start: int) -> _Body:
        md = MarkdownIt("commonmark")
        tokens = md.parse(body)
        result = _Body()
        seen: dict[str, int] = {}
        # None: before the first heading; "": under a heading already reported as wrong.
        section: str | None = None
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            line = body_start + (tok.map[0] if tok.map else 0)
            end = _matching_close(tokens, i)
            opened: str | None = None
            if tok.type == "heading_open":
                title = tokens[i + 1].content.strip().rstrip(":").strip()
                opened = section = self._heading(tok, title, line, seen) or ""
            elif section is None:
                # A label such as 'Headlines:' is reported, then read as the heading it
                # should be, so that the list under it is still checked.
                opened = self._outside(tok, tokens, i, line, seen)
                section = opened or section
            if opened is not None:
                if section == "Headlines":
                    result.headlines, result.headlines_line = [], line
                elif section == "Details":
                    result.items, result.details_line = [], line
                elif section == "About":
                    result.about_line = line
            elif not section:
                pass  # before the first section (reported above) or under a wrong heading
            elif tok.type in ("bullet_list_open", "ordered_list_open"):
                self._list(section, tokens[i + 1 : end], body_start, result, line)
            elif tok.type == "paragraph_open" and section == "About":
                self._about(tokens[i + 1], line, result)
            else:
                self._unexpected(section, tok, line)
            i = end + 1
        self._check_sections(result, body_start)
        return result

    def _heading(self, tok: Token, title: str, line: int, seen: dict[str, int]) -> str | None:
        if tok.tag != "h2":
            self.error(
                line,
                f"'{tok.markup}{' ' if tok.markup.startswith('#') else ''}{title}': sections "
                "are written with two hashes, like '## Headlines'",
            )
            return None
        name = next((s for s in SECTIONS if s.lower() == title.lower()), None)
        if name is None:
            self.error(
                line,
                f"unknown section '## {title}'; the sections are "
                "'## Headlines', '## Details' and '## About'",
            )
            return None
        if name in seen:
            self.error(line, f"'## {name}' appears twice (first on line {seen[name]})")
            return None
        seen[name] = line
        return name

    def _outside(
        self, tok: Token, tokens: list[Token], i: int, line: int, seen: dict[str, int]
    ) -> str | None:
        text = tokens[i + 1].content.strip() if tok.type == "paragraph_open" else ""
        name = next((s for s in SECTIONS if s.lower() == text.rstrip(":").strip().lower()), None)
        if name is not None and name not in seen:
            self.error(line, f"'{text}' must be written as a section heading: '## {name}'")
            seen[name] = line
            return name
        self.error(
            line,
            "text outside any section; everything after the front matter belongs under "
            "'## Headlines', '## Details' or '## About' (a greeting goes in the front "
            "matter as 'greeting:')",
        )
        return None

    def _unexpected(self, section: str, tok: Token, line: int) -> None:
        if tok.type == "code_block":
            self.error(
                line,
                "indented text (4 or more spaces) is read as code; remove the indentation",
            )
        elif tok.type == "html_block":
            self.error(line, "raw HTML is not allowed in an issue; write plain Markdown")
        elif section == "About":
            self.error(line, "'## About' holds one plain paragraph, not lists or headings")
        else:
            self.error(
                line,
                f"'## {section}' must be a bulleted list: each entry on a line starting with '- '",
            )

    def _list(
        self, section: str, inner: list[Token], body_start: int, result: _Body, line: int
    ) -> None:
        if section == "About":
            self.error(line, "'## About' holds one plain paragraph, not a list")
            return
        for item_tokens, item_line in _list_items(inner, body_start):
            inline = self._item_inline(section, item_tokens, item_line)
            text = _one_line(inline.content) if inline is not None else ""
            if section == "Headlines":
                if not text:
                    self.error(item_line, "empty headline: write the headline after '- '")
                    continue
                if inline is not None:
                    self._inline(inline, item_line)
                assert result.headlines is not None
                if not result.headlines:
                    result.first_headline_line = item_line
                result.headlines.append(text)
            else:
                if not text:
                    self.error(item_line, "detail item without text: write the story after '- '")
                    continue
                assert inline is not None
                self._inline(inline, item_line)
                if _only_bold(inline):
                    self.error(
                        item_line,
                        "detail item has a bold lead but no text after it: "
                        "write the story after the '**…**' part",
                    )
                assert result.items is not None
                result.items.append(Item(markdown=text, line=item_line))

    def _item_inline(self, section: str, tokens: list[Token], line: int) -> Token | None:
        """The single paragraph of a list entry; anything else inside it is an error."""
        inlines: list[Token] = []
        for tok in tokens:
            if tok.type == "inline":
                inlines.append(tok)
            elif tok.type not in ("paragraph_open", "paragraph_close"):
                self._nested(section, tok, line)
                return None
        if len(inlines) > 1:
            self.error(
                line,
                f"an entry under '## {section}' must be one paragraph; remove the blank line "
                "inside it (or start a new entry with '- ')",
            )
            return None
        return inlines[0] if inlines else None

    def _nested(self, section: str, tok: Token, line: int) -> None:
        inner_line = line
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            what = "a list inside an entry (check the indentation)"
        elif tok.type == "heading_open":
            what = "a heading inside an entry"
        elif tok.type == "code_block" or tok.type == "fence":
            what = "code inside an entry (remove the extra indentation)"
        else:
            what = f"'{tok.type.removesuffix('_open')}' inside an entry"
        self.error(inner_line, f"'## {section}' entries are single paragraphs; found {what}")

    def _about(self, inline: Token, line: int, result: _Body) -> None:
        if result.about is not None:
            self.error(
                line,
                "'## About' holds one paragraph; join the paragraphs (remove the blank line)",
            )
            return
        self._inline(inline, line)
        result.about = _one_line(inline.content)

    def _inline(self, inline: Token, line: int) -> None:
        """Check the links and images of one paragraph, pointing at the line of each."""
        offset = 0
        label: list[str] = []
        href: str | None = None
        html_lines: set[int] = set()
        for child in inline.children or []:
            if child.type in ("softbreak", "hardbreak"):
                offset += 1
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                label = []
            elif child.type == "link_close":
                self._link("".join(label).strip(), href or "", line + offset)
                href = None
            elif child.type == "image":
                self.error(
                    line + offset,
                    "pictures are not allowed inside the text; the issue's picture goes in "
                    "the front matter under 'hero:'",
                )
            elif child.type == "html_inline":
                if line + offset not in html_lines:
                    self.error(line + offset, "raw HTML is not allowed in an issue; use Markdown")
                html_lines.add(line + offset)
            elif child.type in ("text", "code_inline"):
                if href is not None:
                    label.append(child.content)
                elif _BROKEN_LINK_RE.search(child.content):
                    self.warn(
                        line + offset,
                        "this looks like a link Markdown cannot read; write it as "
                        "[text](https://…) with no space between ']' and '('",
                    )

    def _link(self, label: str, href: str, line: int) -> None:
        shown = f"'{label}'" if label else "with no text"
        if not label:
            self.error(line, f"link to {href or 'nowhere'} has no text: write [text]({href})")
        if href.strip() in ("", "#"):
            self.error(line, f"link {shown} has no URL: write [{label}](https://…)")
            return
        parts = urlsplit(href)
        if parts.scheme == "mailto":
            if "@" not in parts.path:
                self.error(line, f"link {shown} has an incomplete email address: {href}")
        elif parts.scheme not in ("http", "https") or not parts.netloc:
            self.error(
                line,
                f"link {shown} has '{href}' as its URL, which is not a full web address; "
                "start it with https://",
            )
        elif parts.scheme == "http":
            self.warn(line, f"link {shown} uses http://; use https:// if the site supports it")

    def _check_sections(self, result: _Body, body_start: int) -> None:
        last = self.n_lines
        if result.headlines is None:
            self.error(
                body_start,
                "no '## Headlines' section: add '## Headlines' followed by one '- ' line per story",
            )
        elif not result.headlines:
            self.error(
                result.headlines_line, "'## Headlines' is empty: add one '- ' line per story"
            )
        if result.items is None:
            self.warn(last, "no '## Details' section: the issue has headlines only")
        elif not result.items:
            self.error(result.details_line, "'## Details' is empty: add one '- ' entry per story")
        if result.headlines and result.items and len(result.headlines) != len(result.items):
            self.error(
                result.details_line,
                f"'## Headlines' has {len(result.headlines)} entries but '## Details' has "
                f"{len(result.items)}: each headline needs its detail item, in the same order",
            )
        if result.about is None and result.about_line == 0:
            self.warn(last, "no '## About' section (the closing 'about this digest' paragraph)")
        elif result.about is None:
            self.warn(result.about_line, "'## About' is empty")

    # assembling ----------------------------------------------------------------------

    def _build(self, fields: dict[str, object], body: _Body) -> Issue | None:
        lines = fields.get("_lines")
        line_of: dict[str, int] = lines if isinstance(lines, dict) else {}
        top = 1

        def text(key: str) -> str | None:
            value = fields.get(key)
            return value if isinstance(value, str) else None

        publication = text("publication")
        volume = text("volume")
        if publication is None:
            self.error(line_of.get("publication", top), "missing 'publication:' (the name)")
        if volume is None:
            self.error(line_of.get("volume", top), "missing 'volume:' (e.g. volume: \"2.19\")")
        when = self._date(text("date"), line_of.get("date", top))
        hero = self._build_hero(fields.get("hero"), line_of.get("hero", top))
        lang = text("lang") or "en"
        if not _LANG_RE.match(lang):
            self.error(line_of.get("lang", top), f"lang '{lang}' is not a language code like 'en'")
        if publication is None or volume is None or body.headlines is None:
            return None
        issue = Issue(
            publication=publication,
            volume=volume,
            date=when,
            headlines=tuple(body.headlines),
            items=tuple(body.items or ()),
            title=text("title"),
            preheader=text("preheader"),
            greeting=text("greeting"),
            hero=hero,
            image_credit=text("image_credit"),
            about=body.about,
            lang=lang,
        )
        self._check_fits(issue, line_of, body)
        return issue

    def _check_fits(self, issue: Issue, line_of: dict[str, int], body: _Body) -> None:
        """What the database and the mail headers can hold (PostgreSQL refuses more).

        The limits are the columns' own sizes (``models.Issue``), so a check that
        passes is an issue that ``issue add`` can store and a campaign can send.
        """
        top = 1
        too_long: set[str] = set()
        for key, value, limit in (
            ("publication", issue.publication, limits.PUBLICATION_MAX),
            ("volume", issue.volume, limits.VOLUME_MAX),
            ("title", issue.title, SUBJECT_MAX),
            ("preheader", issue.preheader, limits.PREHEADER_MAX),
        ):
            if value is not None and len(value) > limit:
                too_long.add(key)
                self.error(
                    line_of.get(key, top),
                    f"'{key}' is {len(value)} characters long; at most {limit} fit",
                )
        slug, slug_line = issue.slug, line_of.get("publication", top)
        if not slug:
            self.error(
                slug_line,
                "publication and volume give the issue no web address: together they need "
                "at least one letter (a–z) or digit",
            )
        elif len(slug) > limits.SLUG_MAX:
            self.error(
                slug_line,
                f"publication and volume make a web address (slug) of {len(slug)} "
                f"characters; at most {limits.SLUG_MAX} fit: shorten them",
            )
        if not too_long & {"title", "publication", "volume"}:
            subject = default_subject(issue)  # the title, or made of these and a headline
            if len(subject) > SUBJECT_MAX:
                self.error(
                    body.first_headline_line or top,
                    "the subject made from publication, volume and the first headline is "
                    f"{len(subject)} characters long; at most {SUBJECT_MAX} fit: add a shorter "
                    "'title:'",
                )
        if "preheader" not in too_long:
            preheader = default_preheader(issue)
            if len(preheader) > limits.PREHEADER_MAX:
                self.error(
                    line_of.get("preheader", top),
                    f"the preheader is {len(preheader)} characters long; at most "
                    f"{limits.PREHEADER_MAX} fit: add a shorter 'preheader:'",
                )

    def _date(self, value: str | None, line: int) -> date | None:
        if value is None:
            self.warn(line, "no 'date:' (write it as date: 2023-10-13); the issue shows no date")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.error(line, f"date '{value}' must be written YYYY-MM-DD, e.g. 2023-10-13")
            return None

    def _build_hero(self, value: object, line: int) -> HeroImage | None:
        if not isinstance(value, dict) or not value:
            if value is None:
                self.warn(line, "no 'hero:' image: the issue goes out without a picture")
            elif isinstance(value, dict):
                self.error(line, "'hero:' has no fields; give at least url: and alt:")
            return None
        got: dict[str, tuple[str | None, int]] = value

        def get(key: str) -> str | None:
            return got[key][0] if key in got else None

        url, alt = get("url"), get("alt")
        if url is None:
            self.error(line, "the hero image has no 'url:'")
        elif is_reference(url):
            self._media_file(url, got["url"][1])
        else:
            self._image_url("hero url", url, got["url"][1])
        if alt is None:
            self.error(
                got["alt"][1] if "alt" in got else line,
                "the hero image has no alt text: add '  alt: …' describing the picture "
                "for readers who cannot see it",
            )
        credit_url = get("credit_url")
        if credit_url is not None:
            self._image_url("hero credit_url", credit_url, got["credit_url"][1])
        if url is None or alt is None:
            return None
        return HeroImage(url=url, alt=alt, credit=get("credit"), credit_url=credit_url)

    def _media_file(self, url: str, line: int) -> None:
        """A hero picture given by file name: a picture in the media folder."""
        try:
            name = media_name(url)
        except MediaError as exc:
            self.error(
                line,
                f"hero url '{url}' is neither a full web address (https://…) nor the file "
                f"name of a picture in the media folder: {exc.reason}",
            )
            return
        if self.media is not None and not self.media.exists(name):
            self.error(
                line,
                f"hero url '{url}' names a picture in the media folder, but there is no "
                f"file {self.media.folder / name}: put the picture there, or give its full "
                "https:// address",
            )

    def _image_url(self, what: str, url: str, line: int) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.error(line, f"{what} '{url}' is not a full web address starting with https://")
        elif parts.scheme == "http":
            self.warn(line, f"{what} uses http://; mail programs may block it, use https://")


def _unusable(character: str) -> str:
    """The problem with one character of ``_UNUSABLE``, in words."""
    if character == "\x00":
        what = "a NUL character (a zero byte)"
    elif "\ud800" <= character <= "\udfff":
        what = "half a character (a lone surrogate)"
    else:
        what = f"a control character (#x{ord(character):04x})"
    return f"{what}, which cannot be stored or sent; delete it (it may be invisible)"


def _matching_close(tokens: list[Token], i: int) -> int:
    """Index of the token closing ``tokens[i]`` (itself when it does not open anything)."""
    if tokens[i].nesting != 1:
        return i
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _list_items(inner: list[Token], body_start: int) -> list[tuple[list[Token], int]]:
    """Split the tokens inside a list into its entries, each with its file line."""
    items: list[tuple[list[Token], int]] = []
    i = 0
    while i < len(inner):
        tok = inner[i]
        end = _matching_close(inner, i)
        if tok.type == "list_item_open":
            line = body_start + (tok.map[0] if tok.map else 0)
            items.append((inner[i + 1 : end], line))
        i = end + 1
    return items


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _only_bold(inline: Token) -> bool:
    """True for an entry that is nothing but ``**a bold lead**``."""
    depth = 0
    outside = ""
    for child in inline.children or []:
        if child.type == "strong_open":
            depth += 1
        elif child.type == "strong_close":
            depth -= 1
        elif depth == 0:
            outside += child.content
    return bool(inline.children) and not outside.strip(" \t\n.:—–-")
