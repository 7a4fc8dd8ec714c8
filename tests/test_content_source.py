"""The issue source parser and checker: what it reads, and every error at its line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from digestmail.content.source import IssueSourceError, Problem, load_issue, parse_issue
from digestmail.media import MediaStore
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
