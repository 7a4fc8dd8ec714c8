"""The issue source parser and checker: what it reads, and every error at its line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.config import Settings
from digestmail.content.source import (
    SUBJECT_MAX,
    IssueSourceError,
    Problem,
    load_issue,
    parse_issue,
)
from digestmail.media import MediaStore
from digestmail.models import Issue as StoredIssue
from digestmail.models import max_length
from digestmail.render import default_preheader, default_subject, render_issue
from digestmail.transports.base import TEST_SUBJECT_PREFIX, MessageTemplate, Recipient
from digestmail.transports.mime import MAX_LINE, build_message
from tests.conftest import EXAMPLE_HERO

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vol-4.1.md"

# Line numbers below refer to this text: keep it in sync with the tests.
VALID = """\
---
publication: Test Digest
volume: "2.10"
date: 2024-03-01
greeting: Hello
hero:
  url: https://example.org/hero.jpg
  alt: A ship at sea
  credit: Navy
---

## Headlines

- First story
- Second story

## Details

- **Bold lead** and the [first story](https://example.org/1).
- The second story,
  wrapped over two lines with a [link](https://example.org/2).

## About

About this digest, [subscribe](https://example.org/s).
"""


def errors(text: str) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in parse_issue(text).errors]


def warnings(text: str) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in parse_issue(text).warnings]


def only_error(text: str) -> tuple[int, str]:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def test_valid_issue_is_read_completely() -> None:
    result = parse_issue(VALID)
    assert result.problems == []
    issue = result.issue
    assert issue is not None
    assert issue.publication == "Test Digest"
    assert issue.volume == "2.10"  # a string as written, not the float 2.1
    assert issue.date == date(2024, 3, 1)
    assert issue.greeting == "Hello"
    assert issue.hero is not None
    assert (issue.hero.url, issue.hero.alt, issue.hero.credit) == (
        "https://example.org/hero.jpg",
        "A ship at sea",
        "Navy",
    )
    assert issue.headlines == ("First story", "Second story")
    assert [i.line for i in issue.items] == [19, 20]
    assert issue.items[0].markdown == "**Bold lead** and the [first story](https://example.org/1)."
    assert issue.items[1].markdown.startswith("The second story, wrapped over two lines")
    assert issue.about == "About this digest, [subscribe](https://example.org/s)."
    assert issue.slug == "test-digest-2-10"


def test_unquoted_volume_keeps_its_digits() -> None:
    issue = parse_issue(VALID.replace('volume: "2.10"', "volume: 2.10")).issue
    assert issue is not None and issue.volume == "2.10"


def test_crlf_and_bom_do_not_shift_lines() -> None:
    text = "\ufeff" + VALID.replace("- First story", "- [x]()").replace("\n", "\r\n")
    assert only_error(text) == (14, "link 'x' has no URL: write [x](https://…)")


def test_example_issue_checks_clean_without_warnings() -> None:
    result = parse_issue(EXAMPLE.read_text(encoding="utf-8"), path=str(EXAMPLE))
    assert result.problems == []
    assert result.issue is not None
    assert len(result.issue.headlines) == len(result.issue.items) >= 4
    assert result.issue.hero is not None and result.issue.hero.credit
    assert result.issue.about


# --- errors, each at its line ------------------------------------------------------


def test_broken_yaml_points_at_the_file_line() -> None:
    line, message = only_error(VALID.replace("greeting: Hello", 'greeting: "Hello'))
    assert line == 5
    assert message.startswith("the front matter is not valid YAML")
    assert "quoted scalar, which is never closed" in message
    line, message = only_error(VALID.replace("greeting: Hello", "greeting: Hello: world"))
    assert line == 5
    assert "mapping values are not allowed" in message and "double quotes" in message


def test_missing_front_matter() -> None:
    line, message = errors(VALID.split("---\n", 2)[2])[0]
    assert line == 1 and "must begin with front matter" in message


def test_unclosed_front_matter() -> None:
    assert only_error("---\npublication: X\nvolume: '1'\n")[0] == 1


@pytest.mark.parametrize(
    ("field", "message"),
    [("publication", "missing 'publication:'"), ("volume", "missing 'volume:'")],
)
def test_missing_required_field(field: str, message: str) -> None:
    text = "\n".join(ln for ln in VALID.split("\n") if not ln.startswith(f"{field}:"))
    line, found = only_error(text)
    assert line == 1 and found.startswith(message)


def test_missing_headlines_section() -> None:
    text = VALID.replace("## Headlines\n\n- First story\n- Second story\n\n", "")
    line, message = only_error(text)
    assert line == 10 and "no '## Headlines' section" in message


def test_empty_headlines_section() -> None:
    text = VALID.replace("- First story\n- Second story\n", "")
    assert only_error(text) == (12, "'## Headlines' is empty: add one '- ' line per story")


def test_detail_item_without_text() -> None:
    text = VALID.replace("- **Bold lead** and", "-\n- **Bold lead** and")
    found = errors(text)
    assert (19, "detail item without text: write the story after '- '") in found


def test_detail_item_with_only_a_bold_lead() -> None:
    text = VALID.replace(
        "- **Bold lead** and the [first story](https://example.org/1).", "- **Bold lead**"
    )
    line, message = only_error(text)
    assert line == 19 and "bold lead but no text" in message


@pytest.mark.parametrize("target", ["", "#", " # "])
def test_link_without_url(target: str) -> None:
    text = VALID.replace("(https://example.org/2)", f"({target})")
    assert only_error(text) == (21, "link 'link' has no URL: write [link](https://…)")


def test_link_with_a_relative_address() -> None:
    line, message = only_error(VALID.replace("(https://example.org/1)", "(www.example.org)"))
    assert line == 19 and "not a full web address" in message


def test_headline_count_must_match_items() -> None:
    text = VALID.replace("- Second story\n", "- Second story\n- Third story\n")
    line, message = only_error(text)
    assert line == 18  # the Details heading, one line lower after the added headline
    assert message.startswith("'## Headlines' has 3 entries but '## Details' has 2")


def test_hero_without_alt_text() -> None:
    line, message = only_error(VALID.replace("  alt: A ship at sea\n", ""))
    assert line == 6 and "no alt text" in message
    line, message = only_error(VALID.replace("  alt: A ship at sea\n", "  alt:\n"))
    assert line == 8 and "no alt text" in message


def test_hero_with_a_bad_url() -> None:
    line, message = only_error(VALID.replace("https://", "ftp://", 1))
    assert line == 7 and "not a full web address" in message


def test_hero_as_a_file_in_the_media_folder(tmp_path: Path) -> None:
    text = VALID.replace("https://example.org/hero.jpg", "media/hero.jpg")
    media = MediaStore(tmp_path / "media")
    [problem] = parse_issue(text, media=media).errors
    assert problem.line == 7
    assert "no file" in problem.message and str(tmp_path / "media" / "hero.jpg") in problem.message
    # Without a folder to look in (checking a file anywhere), only the name is checked.
    assert parse_issue(text).errors == []
    media.store("hero.jpg", EXAMPLE_HERO.read_bytes())
    result = parse_issue(text, media=media)
    assert result.problems == [] and result.issue is not None and result.issue.hero is not None
    assert result.issue.hero.url == "media/hero.jpg"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("images/hero.jpg", "no sub-folders"),
        ("../hero.jpg", "no sub-folders"),
        ("hero.svg", "only pictures"),
        (".hero.jpg", "letters, digits"),
        ("my hero.jpg", "letters, digits"),
    ],
)
def test_hero_file_names_that_cannot_be_served(url: str, reason: str, tmp_path: Path) -> None:
    text = VALID.replace("https://example.org/hero.jpg", f'"{url}"')
    line, message = only_error(text)
    assert line == 7 and f"hero url '{url}' is neither a full web address" in message
    assert reason in message


def test_unknown_section() -> None:
    text = VALID.replace("## About", "## Abuot")
    line, message = only_error(text)
    assert line == 23 and message.startswith("unknown section '## Abuot'")


def test_heading_with_the_wrong_level() -> None:
    line, message = only_error(VALID.replace("## About", "# About"))
    assert line == 23 and "two hashes" in message


def test_text_outside_sections_and_unmarked_heading() -> None:
    text = VALID.replace("## Headlines\n", "Welcome!\n\nHeadlines:\n")
    found = errors(text)
    assert len(found) == 2, found
    assert found[0][0] == 12 and "text outside any section" in found[0][1]
    assert found[1] == (14, "'Headlines:' must be written as a section heading: '## Headlines'")


def test_bad_date() -> None:
    line, message = only_error(VALID.replace("2024-03-01", "March 1, 2024"))
    assert line == 4 and "YYYY-MM-DD" in message


def test_image_in_text_and_raw_html() -> None:
    text = VALID.replace("- Second story", "- Second ![pic](https://x.org/a.png) <b>story</b>")
    found = [line for line, _ in errors(text)]
    assert found == [15, 15]


def test_duplicate_section_and_field() -> None:
    text = VALID.replace("greeting: Hello", "volume: '3'") + "\n## About\n\nAgain.\n"
    found = errors(text)
    assert found[0][0] == 5 and "'volume' is given twice (first on line 3)" in found[0][1]
    assert found[1][0] == 27 and "appears twice" in found[1][1]


def test_indented_list_is_reported_as_code() -> None:
    text = VALID.replace("- First story\n- Second story", "    - First story\n    - Second story")
    assert (14, "indented text (4 or more spaces) is read as code; remove the indentation") in (
        errors(text)
    )


def test_all_problems_are_reported_in_line_order() -> None:
    text = VALID.replace("  alt: A ship at sea\n", "").replace("(https://example.org/1)", "(#)")
    assert [p.line for p in parse_issue(text).errors] == [6, 18]


# --- warnings ------------------------------------------------------------------------


def test_no_date_and_no_hero_are_warnings_only() -> None:
    lines = VALID.split("\n")
    text = "\n".join(lines[:3] + lines[9:])  # drops date, greeting and hero
    result = parse_issue(text)
    assert result.ok
    assert [p.message[:12] for p in result.warnings] == ["no 'date:' (", "no 'hero:' i"]
    assert result.issue is not None and result.issue.date is None


def test_unknown_field_and_http_link_warn() -> None:
    text = VALID.replace("greeting: Hello", "greting: Hello").replace(
        "https://example.org/2", "http://example.org/2"
    )
    result = parse_issue(text)
    assert result.ok
    assert [(p.line, p.message[:20]) for p in result.warnings] == [
        (5, "unknown field 'greti"),
        (21, "link 'link' uses htt"),
    ]


def test_problem_format() -> None:
    assert Problem(3, "error", "bad").format("a.md") == "a.md:3: error: bad"


# --- load_issue ----------------------------------------------------------------------


def test_load_issue_returns_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "issue.md"
    path.write_text(VALID, encoding="utf-8")
    assert load_issue(path).volume == "2.10"


def test_load_issue_raises_with_every_error(tmp_path: Path) -> None:
    path = tmp_path / "issue.md"
    path.write_text(
        VALID.replace("  alt: A ship at sea\n", "").replace("https://example.org/1", "#"),
        encoding="utf-8",
    )
    with pytest.raises(IssueSourceError) as caught:
        load_issue(path)
    assert [p.line for p in caught.value.problems] == [6, 18]
    assert f"{path}:6: error: the hero image has no alt text" in str(caught.value)
    assert str(caught.value).startswith(f"{path}: 2 errors")


def test_load_issue_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "issue.md"
    path.write_bytes(VALID.encode("utf-8") + b"\n\xff\n")
    with pytest.raises(IssueSourceError, match="not UTF-8"):
        load_issue(path)


# --- what can be stored and sent ------------------------------------------------------


def issue_source(
    *,
    publication: str = "Test Digest",
    volume: str = "2.10",
    title: str | None = None,
    preheader: str | None = None,
    headlines: tuple[str, ...] = ("First story", "Second story"),
    extra: str = "",
) -> str:
    """An issue with these values, each written as a YAML double-quoted string."""
    front = [f"publication: {json.dumps(publication)}", f"volume: {json.dumps(volume)}"]
    if title is not None:
        front.append(f"title: {json.dumps(title)}")
    if preheader is not None:
        front.append(f"preheader: {json.dumps(preheader)}")
    return "\n".join(
        [
            "---",
            *front,
            "date: 2024-03-01",
            extra,
            "---",
            "",
            "## Headlines",
            "",
            *(f"- {h}" for h in headlines),
            "",
            "## Details",
            "",
            *(f"- The story of {h}." for h in headlines),
            "",
            "## About",
            "",
            "About this digest.",
            "",
        ]
    )


_COLUMN = {
    "publication": max_length(StoredIssue.publication),
    "volume": max_length(StoredIssue.volume),
    "title": SUBJECT_MAX,
    "preheader": max_length(StoredIssue.preheader),
}


@pytest.mark.parametrize("key", list(_COLUMN))
def test_check_refuses_values_longer_than_their_columns(key: str) -> None:
    limit = _COLUMN[key]
    # Non-ASCII letters leave the slug (publication and volume in a-z0-9) short.
    fits = issue_source(**{key: "日" * limit})  # type: ignore[arg-type]
    assert errors(fits) == []
    line, message = only_error(issue_source(**{key: "日" * (limit + 1)}))  # type: ignore[arg-type]
    assert line == {"publication": 2, "volume": 3, "title": 4, "preheader": 4}[key]
    assert f"'{key}' is {limit + 1} characters long; at most {limit} fit" in message


def test_check_refuses_a_made_up_subject_too_long_for_a_subject() -> None:
    long = "word " * (SUBJECT_MAX // 5)
    line, message = only_error(issue_source(headlines=(long, "Second")))
    assert line == 10 and f"at most {SUBJECT_MAX} fit: add a shorter 'title:'" in message
    assert errors(issue_source(title="Short", headlines=(long, "Second"))) == []


def test_the_longest_subject_check_allows_can_be_sent_as_a_test() -> None:
    """The limit is the sending rule's: a test send of it builds; one more would not."""
    room = MAX_LINE - len(f"Subject: {TEST_SUBJECT_PREFIX}\r\n")
    assert room >= SUBJECT_MAX
    for length, builds in ((SUBJECT_MAX, True), (room, True), (room + 1, False)):
        template = MessageTemplate(
            subject=TEST_SUBJECT_PREFIX + "x" * length, html="<p>x</p>", text="x", from_addr="a@b.c"
        )
        try:
            build_message(template, Recipient("r@example.com"), domain="example.com")
        except ValueError:
            assert not builds, length
        else:
            assert builds, length


def test_check_refuses_a_slug_too_long_or_empty() -> None:
    line, message = only_error(issue_source(publication="!!!", volume="???"))
    assert line == 2 and "no web address" in message
    long = "p" * max_length(StoredIssue.slug)
    line, message = only_error(issue_source(publication=long))
    assert line == 2 and f"at most {max_length(StoredIssue.slug)} fit" in message


@pytest.mark.parametrize(
    "old,new,line",
    [
        ('volume: "2.10"', 'volume: "2.10\x00"', 3),
        ("- Second story", "- Second\x00 story", 15),
        ("About this digest", "About\x00 this digest", 25),
    ],
)
def test_check_refuses_nul_anywhere(old: str, new: str, line: int) -> None:
    found = errors(VALID.replace(old, new))
    assert (line, found[0][1]) == found[0] and "NUL" in found[0][1], found


@pytest.mark.parametrize("escape", ["\\0", "\\x00", "\\u0000", "\\ud800", "\\ude00\\ud83d"])
def test_check_refuses_escapes_that_stand_for_nothing_storable(escape: str) -> None:
    line, message = only_error(VALID.replace("greeting: Hello", f'greeting: "Hi {escape}"'))
    assert line == 5 and "holds an escape that stands for" in message
    # A pair written as two escapes is one character, as the writer meant.
    ok = parse_issue(VALID.replace("greeting: Hello", 'greeting: "Hi \\ud83d\\ude00"'))
    assert ok.issue is not None and ok.issue.greeting == "Hi 😀"


@pytest.mark.parametrize("character", ["\x01", "\x1b", "\x0b"])
def test_check_refuses_control_characters_the_email_cannot_hold(character: str) -> None:
    """The MJML compiler reads the HTML part as XML, which has no room for them."""
    for old, new, line in (
        ("greeting: Hello", f"greeting: Hel{character}lo", 5),
        ("greeting: Hello", f'greeting: "Hel\\x{ord(character):02x}lo"', 5),
        ("- First story", f"- First{character} story", 14),
    ):
        found_line, message = only_error(VALID.replace(old, new))
        assert found_line == line and f"control character (#x{ord(character):04x})" in message


@pytest.mark.parametrize("style", ["flow", "block"])
def test_check_refuses_front_matter_nested_too_deeply(style: str) -> None:
    if style == "flow":
        nested = "greeting: " + "[" * 3000 + "]" * 3000
    else:
        nested = "greeting:\n" + "".join("  " * i + "-\n" for i in range(1, 3000))
    line, message = only_error(VALID.replace("greeting: Hello", nested))
    assert line == (5 if style == "flow" else 5 + 20) and "nested more than" in message


def test_check_refuses_per_reader_placeholders_in_the_source() -> None:
    text = VALID.replace("- First story", "- Hello %%name%%, %%unsubscribe_url:html%%")
    line, message = only_error(text)
    assert line == 14 and "%%name%%, %%unsubscribe_url%%" in message
    assert errors(VALID.replace("- First story", "- Growth of 5%% a year")) == []


# --- properties --------------------------------------------------------------------------


@settings(max_examples=200)
@given(text=st.text(max_size=400))
def test_property_any_text_is_checked_without_raising(text: str) -> None:
    result = parse_issue(text)
    lines = max(1, len(text.replace("\r\n", "\n").replace("\r", "\n").splitlines()))
    for problem in result.problems:
        assert 1 <= problem.line <= lines and problem.message
    assert result.ok == (result.issue is not None and not result.errors)


_frontmatter = st.sampled_from(["---\n", "---\npublication: x\nvolume: 1\n---\n", ""])
_markdownish = st.lists(
    st.sampled_from(["## Headlines", "## Details", "## About", "- item", "text", "", "  - x"])
    | st.text(max_size=30),
    max_size=12,
).map("\n".join)


@settings(max_examples=200)
@given(head=_frontmatter, body=_markdownish)
def test_property_issue_shaped_text_is_checked_without_raising(head: str, body: str) -> None:
    result = parse_issue(head + body)
    assert all(p.line >= 1 and p.message for p in result.problems)


_words = st.text(alphabet="abcdefghij ", min_size=1, max_size=40).map(str.strip).filter(bool)


@settings(max_examples=200)
@given(
    publication=st.text(max_size=250),
    volume=st.text(max_size=40),
    title=st.none() | st.text(max_size=350),
    preheader=st.none() | st.text(max_size=350),
    headlines=st.lists(_words, min_size=1, max_size=4),
)
def test_property_what_check_accepts_fits_and_keeps_every_headline(
    publication: str,
    volume: str,
    title: str | None,
    preheader: str | None,
    headlines: list[str],
) -> None:
    text = issue_source(
        publication=publication,
        volume=volume,
        title=title,
        preheader=preheader,
        headlines=tuple(headlines),
    )
    result = parse_issue(text)
    assert all(1 <= p.line <= len(text.splitlines()) for p in result.problems)
    issue = result.issue
    if issue is None:
        assert result.errors  # refused: it says why, and where
        return
    assert list(issue.headlines) == [" ".join(h.split()) for h in headlines]
    assert 0 < len(issue.slug) <= max_length(StoredIssue.slug)
    assert len(issue.publication) <= max_length(StoredIssue.publication)
    assert len(issue.volume) <= max_length(StoredIssue.volume)
    assert len(default_subject(issue)) <= SUBJECT_MAX
    assert len(default_preheader(issue)) <= max_length(StoredIssue.preheader)
    for value in (issue.publication, issue.volume, issue.title or "", issue.preheader or ""):
        value.encode("utf-8")  # no lone surrogates
        assert "\x00" not in value


_line = st.text(min_size=1, max_size=60).map(lambda t: " ".join(t.split()) or "x")


@settings(max_examples=60)
@given(
    title=st.none() | st.text(max_size=60),
    greeting=st.text(max_size=40),
    headlines=st.lists(_line, min_size=1, max_size=3),
)
def test_property_what_check_accepts_renders(
    title: str | None, greeting: str, headlines: list[str]
) -> None:
    text = issue_source(
        title=title, headlines=tuple(headlines), extra=f"greeting: {json.dumps(greeting)}"
    )
    result = parse_issue(text)
    if result.issue is not None:
        rendered = render_issue(result.issue, Settings(secret_key="property-test-key"))
        assert rendered.subject and rendered.html
