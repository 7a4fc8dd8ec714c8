"""The archive importer: the three real samples and hand-made variations of their shapes."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.content.importer import ArchiveImportError, import_archive
from digestmail.content.model import Issue
from digestmail.content.source import parse_issue

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
VARIANTS = Path(__file__).parent / "fixtures" / "issues"

HEADLINES = [
    "Allies agree on new defense roadmap",
    "Trade ministers meet on chips",
    "Coast guards train together",
]
DETAILS = [
    "Defense ministers agreed on a roadmap for command and control cooperation on March 3. "
    "The plan sets out steps for joint planning, shared facilities and exercises over the "
    "coming two years, and was welcomed by officials in both capitals as overdue progress.",
    "Trade ministers met in Osaka to discuss semiconductor supply chains and export controls. "
    "They agreed to share information on shortages and to coordinate investment incentives "
    "so that the two economies do not compete for the same factories and engineers.",
    "The two coast guards held a search-and-rescue drill off Yokohama with vessels and "
    "helicopters. The exercise follows a memorandum of cooperation that adds capacity "
    "building for partners in Southeast Asia to the coast guards' joint program of work.",
]
ABOUT = '"Policy Digest" is a bi-weekly summary. To subscribe, contact digest@example.org'
CHROME = [
    "Download this publication (PDF)",
    "Home » Publications » Policy Digest Vol 5.6",
    "© 2024 Example Institute | Privacy Policy | Sitemap",
    "Website design by Example Studio",
]


def imported(text: str, **kwargs: object) -> Issue:
    result = import_archive(text, **kwargs)  # type: ignore[arg-type]
    assert result.check.errors == [], result.source
    assert result.issue is not None
    # The written source is itself what the checker reads back.
    assert parse_issue(result.source).issue == result.issue
    return result.issue


def assert_content(issue: Issue) -> None:
    assert list(issue.headlines) == HEADLINES
    assert [item.markdown for item in issue.items] == DETAILS
    assert issue.about == ABOUT


# --- the real samples -------------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.txt")), ids=lambda p: p.name)
def test_every_sample_imports_and_checks_clean(sample: Path) -> None:
    result = import_archive(sample.read_text(encoding="utf-8"))
    assert result.check.errors == []
    issue = result.issue
    assert issue is not None
    assert issue.publication == "US-Japan Alliance Digest"
    assert f"vol-{issue.volume}.txt" == sample.name
    assert len(issue.headlines) == len(issue.items) == 5
    assert issue.about is not None and issue.about.lstrip('“"').startswith("US-Japan Alliance")
    for chrome in ("Download", "Privacy Policy", "Sitemap", "WordPress", "Publications"):
        assert chrome not in result.source


def test_sample_2_19_markdown_shape() -> None:
    result = import_archive((SAMPLES / "vol-2.19.txt").read_text(encoding="utf-8"))
    issue = result.issue
    assert issue is not None
    assert issue.date == date(2023, 10, 13)
    assert issue.image_credit == "OSD Public Affairs"
    assert issue.items[0].markdown.startswith("**Defense Minister Kihara met Secretary")
    assert "](#)" not in result.source and "The pair reaffirmed their" in result.source
    assert any("dropped 18 links" in note for note in result.notes)
    assert result.check.warnings and not any("date" in w.message for w in result.check.warnings)


def test_sample_3_2_greeting_before_headlines_and_no_date() -> None:
    result = import_archive((SAMPLES / "vol-3.2.txt").read_text(encoding="utf-8"))
    issue = result.issue
    assert issue is not None
    assert issue.greeting == "Happy New Year"
    assert issue.image_credit == "Kyodo News"
    assert issue.date is None
    assert any(note.startswith("no date in the archive") for note in result.notes)
    assert any("no 'date:'" in w.message for w in result.check.warnings)
    assert issue.headlines[0] == "Japan signs letter of acceptance for 400 US Tomahawk missiles"


def test_sample_2_4_takes_the_date_option() -> None:
    text = (SAMPLES / "vol-2.4.txt").read_text(encoding="utf-8")
    issue = imported(text, date=date(2023, 3, 3))
    assert issue.date == date(2023, 3, 3)
    assert issue.image_credit == "USNI"
    assert (
        issue.headlines[0] == "US & Japanese forces conduct “Iron Fist” exercise in western Pacific"
    )


# --- variations -------------------------------------------------------------------


def _archive(
    *head: str, bullet: str = "•", labels: bool = False, between: str = "\n\n", inner: str = "\n"
) -> str:
    parts = [*CHROME[:2], *head, ""]
    if labels:
        parts.append("Headlines:")
    parts.append(inner.join(f"{bullet} {h}" for h in HEADLINES))
    parts.append(between.rstrip("\n"))
    if labels:
        parts.append("Details:")
    parts.append(inner.join(f"{bullet} {d}" for d in DETAILS))
    parts += ["", ABOUT, "", *CHROME[2:]]
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("head", "volume", "when"),
    [
        (["Policy Digest Vol 5.6", "October 13, 2023"], "5.6", date(2023, 10, 13)),
        (["Policy Digest", "Vol: 5.6", "Oct 13, 2023"], "5.6", date(2023, 10, 13)),
        (["Policy Digest", "Vol. 5.6", "13 October 2023"], "5.6", date(2023, 10, 13)),
        (["Policy Digest — Volume 5.6", "2023-10-13"], "5.6", date(2023, 10, 13)),
        (["Policy Digest Vol. 5, No. 16", "Friday, Sept. 1st, 2023"], "5.16", date(2023, 9, 1)),
        (["Policy Digest | Vol 5.6 | Oct. 13, 2023"], "5.6", date(2023, 10, 13)),
        (["# Policy Digest", "**Vol 5.6**"], "5.6", None),
    ],
)
def test_title_volume_and_date_forms(head: list[str], volume: str, when: date | None) -> None:
    issue = imported(_archive(*head))
    assert (issue.publication, issue.volume, issue.date) == ("Policy Digest", volume, when)
    assert_content(issue)


@pytest.mark.parametrize("bullet", ["•", "-", "*", "–", "1."])
@pytest.mark.parametrize("labels", [True, False])
def test_bullets_with_and_without_labels(bullet: str, labels: bool) -> None:
    issue = imported(_archive("Policy Digest Vol 5.6", bullet=bullet, labels=labels))
    assert_content(issue)


def test_unlabelled_groups_told_apart_by_length_when_spacing_is_even() -> None:
    # Every bullet separated by one blank line: only the length tells them apart.
    text = _archive("Policy Digest Vol 5.6", between="\n\n", inner="\n\n")
    assert_content(imported(text))


def test_unlabelled_groups_with_no_blank_between() -> None:
    assert_content(imported(_archive("Policy Digest Vol 5.6", between="\n", inner="\n")))


def test_greeting_on_its_own_line_and_in_the_label() -> None:
    text = _archive("Policy Digest Vol 5.6", "Season's greetings!")
    assert imported(text).greeting == "Season's greetings!"
    text = _archive("Policy Digest Vol 5.6", labels=True).replace(
        "Headlines:", "**Happy Holidays! Headlines:**"
    )
    assert imported(text).greeting == "Happy Holidays!"


def test_image_source_forms() -> None:
    text = _archive("Policy Digest Vol 5.6", "Photo credit: Jane Doe")
    assert imported(text).image_credit == "Jane Doe"
    text = _archive("Policy Digest Vol 5.6", "![Ships at sea](https://example.org/a.jpg)")
    text = text.replace("Policy Digest Vol 5.6", "Policy Digest Vol 5.6\nImage Source: Navy")
    issue = imported(text)
    assert issue.hero is not None
    assert (issue.hero.url, issue.hero.alt, issue.hero.credit) == (
        "https://example.org/a.jpg",
        "Ships at sea",
        "Navy",
    )


def test_markdown_shape_keeps_real_links_and_drops_lost_ones() -> None:
    text = _archive("Policy Digest Vol 5.6", bullet="-", labels=True)
    text = text.replace("roadmap for command", "[roadmap](https://example.org/r) for [command](#)")
    text = text.replace("Defense ministers agreed", "**Defense ministers agreed**")
    result = import_archive(text)
    assert result.issue is not None and result.check.errors == []
    item = result.issue.items[0].markdown
    assert item.startswith("**Defense ministers agreed** on a [roadmap](https://example.org/r)")
    assert "for command and control" in item
    assert any("dropped 1 link " in note for note in result.notes)


def test_plain_shape_escapes_markdown_characters() -> None:
    text = _archive("Policy Digest Vol 5.6").replace(
        "Coast guards train together", "Coast guards *train* [together] <now>"
    )
    result = import_archive(text)
    assert result.issue is not None
    assert result.issue.headlines[2] == r"Coast guards \*train\* \[together\] \<now>"
    assert any("escaped" in note for note in result.notes)


def test_date_option_wins_and_says_so() -> None:
    result = import_archive(
        _archive("Policy Digest Vol 5.6", "October 13, 2023"), date=date(2023, 10, 20)
    )
    assert result.issue is not None and result.issue.date == date(2023, 10, 20)
    assert any("the archive says 2023-10-13" in note for note in result.notes)


def test_unplaced_text_is_named_in_the_notes() -> None:
    text = _archive("Policy Digest Vol 5.6", labels=True).replace(
        "Details:", "An interlude that belongs nowhere.\n\nDetails:"
    )
    result = import_archive(text)
    assert result.issue is not None
    assert any("An interlude that belongs nowhere." in note for note in result.notes)


def test_mismatched_counts_import_but_fail_the_check() -> None:
    text = _archive("Policy Digest Vol 5.6", labels=True).replace(
        f"• {HEADLINES[2]}", f"• {HEADLINES[2]}\n• An extra headline"
    )
    result = import_archive(text)
    assert result.issue is None
    assert [p.message[:40] for p in result.check.errors] == [
        "'## Headlines' has 4 entries but '## Det"
    ]
    assert "- An extra headline" in result.source  # nothing lost: staff fix it by hand


@pytest.mark.parametrize(
    ("name", "publication", "volume", "when", "greeting", "credit", "count"),
    [
        (
            "vol-1.12-plain-dashes.txt",
            "The Alliance Weekly",
            "1.12",
            date(2023, 12, 22),
            "Season's Greetings",
            "Defense Visual Information Distribution Service",
            4,
        ),
        (
            "vol-9.3-numbered-markdown.txt",
            "Asia Policy Brief",
            "9.3",
            date(2024, 3, 5),
            None,
            "Reuters",
            3,
        ),
    ],
)
def test_variant_files_import_clean(
    name: str,
    publication: str,
    volume: str,
    when: date,
    greeting: str | None,
    credit: str,
    count: int,
) -> None:
    result = import_archive((VARIANTS / name).read_text(encoding="utf-8"))
    issue = imported((VARIANTS / name).read_text(encoding="utf-8"))
    assert (issue.publication, issue.volume, issue.date) == (publication, volume, when)
    assert (issue.greeting, issue.image_credit) == (greeting, credit)
    assert len(issue.headlines) == len(issue.items) == count
    assert issue.about is not None and issue.about.endswith("@example.org.") is (
        name.startswith("vol-9.3")
    )
    assert not any("paragraphs" in note for note in result.notes)
    for chrome in ("Privacy", "Copyright", "Share this", "Site by", "WordPress", "Download"):
        assert chrome not in result.source


# --- malformed archives fail clearly ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the archive text is empty"),
        ("\n".join(CHROME), "the archive text is empty"),
        ("Policy Digest Vol 5.6\n\nJust a paragraph of text.\n", "no headlines found"),
        ("Policy Digest Vol 5.6\n\nHeadlines:\n\nNothing here.\n", "no headlines found"),
        ("Policy Digest\n\n• One\n• Two\n", "no volume number found"),
        ("Vol 5.6\n\n• One\n\n• " + DETAILS[0] + "\n", "no publication name found"),
        ("Policy Digest Vol 5.6\n\n• Only one\n", "found only one bullet (line 3)"),
        ("Policy Digest Vol 5.6\n\n• A\n\n• B\n\n• C\n\n• D\n", "cannot tell the headlines"),
        ("Policy Digest Vol 5.6\n\nDetails:\n• A long item\n", "no headlines found before"),
    ],
)
def test_malformed_archives_fail_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ArchiveImportError, match=re.escape(message)):
        import_archive(text)


def test_publication_option_fills_a_missing_name() -> None:
    text = "Vol 5.6\n\n• One\n\n• " + DETAILS[0] + "\n"
    assert imported(text, publication="Policy Digest").publication == "Policy Digest"


def test_about_right_after_the_last_bullet_is_not_glued_to_the_last_story() -> None:
    text = (
        "Policy Digest Vol 5.1\n\nHeadlines:\n\n- First story\n- Second story\n\nDetails:\n\n"
        "- First story in detail.\n- Second story in detail.\n"
        "“Policy Digest” is a bi-weekly summary of developments.\n"
    )
    result = import_archive(text, date=date(2024, 1, 5))
    assert result.check.ok, result.check.problems
    issue = result.issue
    assert issue is not None
    assert issue.items[-1].markdown == "Second story in detail."
    assert issue.about is not None and "bi-weekly summary" in issue.about
    assert any("taken as the About paragraph" in note for note in result.notes)


def test_a_closing_sentence_mentioning_a_privacy_policy_is_kept() -> None:
    about = (
        "Policy Digest is compiled by our staff for readers in government and business; "
        "how we handle your address is set out in our privacy policy."
    )
    text = (
        "Policy Digest Vol 5.2\n\n• One\n• Two\n\n\n• One in detail.\n• Two in detail.\n\n"
        f"{about}\n\n© 2024 Example Institute | Privacy Policy | Sitemap\n"
    )
    result = import_archive(text, date=date(2024, 2, 2))
    assert result.issue is not None and result.issue.about == about
    assert "Sitemap" not in result.source


def test_missing_volume_quotes_the_first_line_of_the_file() -> None:
    with pytest.raises(ArchiveImportError, match="starts with 'Headlines:'"):
        import_archive("Headlines:\n\n- One\n- Two\n\n- One in detail.\n- Two in detail.\n")


# --- properties --------------------------------------------------------------------------

_pieces = st.sampled_from(
    [
        "Policy Digest Vol 5.6",
        "Headlines:",
        "Details:",
        "• ",
        "- ",
        "* ",
        "**Bold**",
        "[link](#)",
        "![a picture](https://example.org/p.jpg)",
        "Image source: Navy",
        "March 3, 2024",
        "&amp; &#0; &#xD800;",
        *CHROME,
    ]
)
_archive_text = st.lists(_pieces | st.text(max_size=40), max_size=15).map("\n".join)


@settings(max_examples=200)
@given(text=st.one_of(st.text(max_size=300), _archive_text))
def test_property_any_text_imports_or_is_refused_with_a_reason(text: str) -> None:
    try:
        result = import_archive(text)
    except ArchiveImportError as exc:
        assert str(exc)  # refused, saying what is missing
        return
    lines = len(result.source.splitlines())
    assert all(1 <= p.line <= lines and p.message for p in result.check.problems)
    # What was written is exactly what the checker reads back.
    assert parse_issue(result.source).problems == result.check.problems


_headline = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=8, max_size=60).map(
    lambda t: t.strip().capitalize()
)


@settings(max_examples=100)
@given(headlines=st.lists(_headline.filter(lambda h: len(h) >= 8), min_size=2, max_size=6))
def test_property_every_story_of_a_well_formed_archive_is_kept(headlines: list[str]) -> None:
    details = [f"{h}: {DETAILS[i % len(DETAILS)]}" for i, h in enumerate(headlines)]
    text = "\n".join(
        [
            CHROME[1],
            "Policy Digest Vol 5.6",
            "March 3, 2024",
            "",
            *(f"• {h}" for h in headlines),
            "",
            *(f"• {d}" for d in details),
            "",
            ABOUT,
            CHROME[2],
        ]
    )
    issue = imported(text)
    assert list(issue.headlines) == [" ".join(h.split()) for h in headlines]
    assert [item.markdown for item in issue.items] == [" ".join(d.split()) for d in details]
