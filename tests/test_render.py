"""The rendered email: structure, escaping, placeholders, size, and the text part."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from pathlib import Path

import lxml.html
import pytest
from pydantic import ValidationError

from digestmail.config import Settings
from digestmail.content.model import HeroImage, Issue, Item
from digestmail.placeholders import Template, substitute
from digestmail.render import (
    GMAIL_CLIP_BYTES,
    TEXT_WIDTH,
    RenderedIssue,
    RenderError,
    default_preheader,
    default_subject,
    inline_html,
    inline_text,
    recipient_values,
    render_issue,
    webview_url,
)
from tests.conftest import SAMPLES

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vol-4.1.md"


@pytest.fixture
def render_settings() -> Settings:
    return Settings(
        base_url="https://digest.example.org/",
        contact_address="alliance@example.org",
        postal_address="Example Policy Institute\n1819 L Street NW, Washington, DC 20036",
    )


def make_issue(**changes: object) -> Issue:
    issue = Issue(
        publication="US-Japan Alliance Digest",
        volume="2.19",
        date=date(2023, 10, 13),
        headlines=(
            "Defense chiefs **Austin, Kihara** meet to discuss next alliance initiatives",
            "US & Japan participate in Indo-Pacific Economic Framework meeting",
            "US-Japan business leaders call on govts to invest in supply chain",
        ),
        items=(
            Item(
                "**Defense Minister Kihara met Secretary Austin** at the Pentagon on October 4. "
                "The pair [reaffirmed](https://www.defense.gov/News/Releases/2023/10/04/) "
                "their strategic alignment."
            ),
            Item("US Trade Representative Katherine Tai [hosted](#) a **virtual IPEF meeting**."),
            Item("Business leaders issued a [joint statement](https://example.org/a?b=1&c=2)."),
        ),
        greeting="Happy New Year!",
        hero=HeroImage(
            url="https://digest.example.org/img/hero.jpg",
            alt="Secretary Austin greets Minister Kihara",
            credit="OSD Public Affairs",
            credit_url="https://www.defense.gov/",
        ),
        about="*Alliance Digest* is a bi-weekly summary. Write to [us](mailto:a@example.org).",
    )
    return dataclasses.replace(issue, **changes)  # type: ignore[arg-type]


def parse(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def visible_text(doc: lxml.html.HtmlElement) -> str:
    return re.sub(r"\s+", " ", doc.body.text_content())


# --- structure -------------------------------------------------------------------


def test_html_has_every_part_of_a_newsletter(render_settings: Settings) -> None:
    rendered = render_issue(make_issue(), render_settings)
    assert rendered.html.lower().startswith("<!doctype html>")
    doc = parse(rendered.html)
    text = visible_text(doc)

    assert doc.get("lang") == "en"
    assert doc.findtext(".//title") == rendered.subject
    # One main landmark holds one article in the issue's language, named by its subject.
    (main,) = doc.xpath("//*[@role='main']")
    assert main.getparent() is doc.body
    (article,) = main.xpath("./div[@role='article']")
    assert (article.get("lang"), article.get("aria-label")) == ("en", rendered.subject)
    # Hidden preheader comes first in the body, hidden without colour tricks.
    assert doc.body.text_content().lstrip().startswith(rendered.preheader)
    (pre,) = doc.xpath("//div[@class='dm-preheader']")
    style = pre.get("style", "").replace(" ", "")
    assert "display:none" in style and "mso-hide:all" in style and "max-height:0" in style
    assert "color" not in style
    # Masthead.
    assert doc.xpath("//h1")[0].text_content().strip() == "US-Japan Alliance Digest"
    assert "Vol. 2.19" in text.replace("\xa0", " ")
    assert "October 13, 2023" in text
    # Hero and its credit.
    (img,) = doc.xpath("//img")
    assert img.get("src") == "https://digest.example.org/img/hero.jpg"
    assert img.get("alt") == "Secretary Austin greets Minister Kihara"
    assert doc.xpath("//a[@href='https://www.defense.gov/']")[0].text == "OSD Public Affairs"
    # Greeting, headlines, items, about.
    assert "Happy New Year!" in text
    assert [h.text_content().strip() for h in doc.xpath("//h2")] == ["Headlines", "In detail"]
    headlines = doc.xpath("//ul[contains(@class, 'headlines')]/li")
    assert len(headlines) == 3
    assert headlines[0].xpath(".//strong")[0].text == "Austin, Kihara"
    items = doc.xpath("//p[contains(@class, 'item')]")
    assert len(items) == 3
    assert items[0].xpath("./strong")[0].text == "Defense Minister Kihara met Secretary Austin"
    assert doc.xpath("//em")[0].text == "Alliance Digest"
    # Footer.
    assert doc.xpath("//a[@href='mailto:alliance@example.org']")
    assert "1819 L Street NW, Washington, DC 20036" in text
    assert doc.xpath("//a[@href='%%unsubscribe_url:html%%']")[0].text == "Unsubscribe"
    assert len(doc.xpath("//a[@href='%%webview_url:html%%']")) == 2


def test_links_that_lead_nowhere_are_plain_text(render_settings: Settings) -> None:
    doc = parse(render_issue(make_issue(), render_settings).html)
    assert not doc.xpath("//a[starts-with(@href, '#')]")
    assert "hosted a virtual IPEF meeting" in visible_text(doc)


def test_dark_mode_and_phone_styles_survive_inlining(render_settings: Settings) -> None:
    html = render_issue(make_issue(), render_settings).html
    doc = parse(html)
    metas = {m.get("name"): m.get("content") for m in doc.xpath("//meta[@name]")}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"
    styles = "\n".join(s.text_content() for s in doc.xpath("//style"))
    assert "@media (prefers-color-scheme: dark)" in styles
    assert "max-width: 480px" in styles
    # Light colours are inlined for clients that drop <style>; text is never pure black.
    assert 'style="' in html and "color:#1f2933" in html.replace(" ", "")
    assert not re.search(r"(?<![-\w])color:\s*(#000000|#000|black)\b", html, re.IGNORECASE)
    # No web fonts or external stylesheets to fetch.
    assert not doc.xpath("//link[@rel='stylesheet']")


def test_every_image_has_alt_text(render_settings: Settings) -> None:
    doc = parse(render_issue(make_issue(), render_settings).html)
    images = doc.xpath("//img")
    assert images
    assert all((img.get("alt") or "").strip() for img in images)


def test_image_credit_without_image(render_settings: Settings) -> None:
    issue = make_issue(hero=None, image_credit="[Kyodo News](https://english.kyodonews.net/)")
    rendered = render_issue(issue, render_settings)
    doc = parse(rendered.html)
    assert not doc.xpath("//img")
    assert doc.xpath("//a[@href='https://english.kyodonews.net/']")[0].text == "Kyodo News"
    assert "Image: Kyodo News (https://english.kyodonews.net/)" in rendered.text


def test_minimal_issue_renders(render_settings: Settings) -> None:
    issue = Issue(
        publication="Digest",
        volume="1.1",
        date=None,
        headlines=("Only headline",),
        items=(Item("Only item."),),
    )
    rendered = render_issue(issue, render_settings)
    doc = parse(rendered.html)
    assert "%%greeting_name" not in rendered.html
    assert "%%greeting_name" not in rendered.text
    assert "Only item." in visible_text(doc)
    assert rendered.subject == "Digest Vol. 1.1: Only headline"


@pytest.mark.parametrize(("lang", "direction"), [("ja", "ltr"), ("en-GB", "ltr"), ("ar", "rtl")])
def test_lang_ends_up_on_the_html_element(
    render_settings: Settings, lang: str, direction: str
) -> None:
    doc = parse(render_issue(make_issue(lang=lang), render_settings).html)
    assert doc.get("lang") == lang
    assert doc.get("dir") == direction


def test_bad_input_is_a_clear_error(render_settings: Settings) -> None:
    with pytest.raises(RenderError, match="language tag"):
        render_issue(make_issue(lang='en" onload="x'), render_settings)
    hero = HeroImage(url="https://example.org/a.jpg", alt="  ")
    with pytest.raises(RenderError, match="alt text"):
        render_issue(make_issue(hero=hero), render_settings)


def test_a_broken_template_is_a_render_error(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "issue.mjml.j2").write_text("<mjml><mj-body>{% if %}</mj-body></mjml>")
    with pytest.raises(RenderError, match=r"template is broken \(.*issue.mjml.j2, line 1\)"):
        render_issue(make_issue(), Settings(templates_dir=tmp_path))
    (tmp_path / "email" / "issue.mjml.j2").write_text("<mjml><mj-body><mj-section>")
    with pytest.raises(RenderError, match="MJML"):
        render_issue(make_issue(), Settings(templates_dir=tmp_path))
    # A folder that is not there is refused when the settings are read…
    with pytest.raises(ValidationError, match="not a templates folder"):
        Settings(templates_dir=tmp_path / "nowhere")
    # …and one that goes away later is still a render error, not a crash.
    gone = Settings(templates_dir=tmp_path).model_copy(update={"templates_dir": tmp_path / "x"})
    with pytest.raises(RenderError, match="not found"):
        render_issue(make_issue(), gone)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_archive_samples_render(render_settings: Settings, sample: Path) -> None:
    from digestmail.content.importer import import_archive

    imported = import_archive(sample.read_text(encoding="utf-8"), date=date(2024, 1, 26))
    assert imported.issue is not None
    rendered = render_issue(imported.issue, render_settings)
    doc = parse(rendered.html)
    assert len(doc.xpath("//ul[contains(@class, 'headlines')]/li")) == 5
    assert len(doc.xpath("//p[contains(@class, 'item')]")) == 5
    assert rendered.size_warning is None
    assert "Sasakawa USA" in rendered.text
    assert rendered.subject.startswith("US-Japan Alliance Digest Vol. ")


# --- escaping --------------------------------------------------------------------


def test_html_in_content_is_escaped_never_executed(render_settings: Settings) -> None:
    evil = "<script>alert('x')</script>"
    issue = make_issue(
        publication=f"Digest {evil}",
        headlines=(f"Headline {evil}", "<img src=x onerror=alert(1)>"),
        items=(
            Item(f"**Lead {evil}** text [click](javascript:alert(1)) end."),
            Item('A [link](https://example.org/"><script>x</script>) here.'),
        ),
        greeting=evil,
        about=evil,
        hero=HeroImage(url='https://example.org/a.jpg"><script>', alt=f"alt {evil}", credit=evil),
    )
    rendered = render_issue(issue, render_settings)
    doc = parse(rendered.html)
    assert not doc.xpath("//script")
    assert "<script" not in rendered.html.lower()
    assert "&lt;script&gt;" in rendered.html
    assert not [e for e in doc.iter() if any(a.startswith("on") for a in e.attrib)]
    assert not [a for a in doc.xpath("//a") if "javascript" in (a.get("href") or "").lower()]
    assert "Headline <script>alert('x')</script>" in visible_text(doc)
    # The text part is plain text: it keeps the characters as written.
    assert f"Headline {evil}" in rendered.text


def test_inline_markdown_helpers() -> None:
    assert inline_html("**Bold** and [a](https://x.org/?a=1&b=2)") == (
        '<strong>Bold</strong> and <a href="https://x.org/?a=1&amp;b=2">a</a>'
    )
    assert inline_html("<b>raw</b>") == "&lt;b&gt;raw&lt;/b&gt;"
    assert inline_text("**Bold** and [a](https://x.org/)") == "Bold and a (https://x.org/)"
    assert inline_text("[a](https://x.org/)", urls=False) == "a"
    assert inline_text("<https://x.org/>") == "https://x.org/"
    assert inline_text("[me@x.org](mailto:me@x.org)") == "me@x.org"
    assert inline_text("[dead](#)") == "dead"


# --- placeholders ------------------------------------------------------------------


def test_placeholders_survive_mjml_and_premailer(render_settings: Settings) -> None:
    rendered = render_issue(make_issue(), render_settings)
    html_slots = Template.parse(rendered.html).slots
    assert set(html_slots) == {
        ("greeting_name", True),
        ("unsubscribe_url", True),
        ("webview_url", True),
    }
    text_slots = Template.parse(rendered.text).slots
    assert set(text_slots) == {
        ("greeting_name", False),
        ("unsubscribe_url", False),
        ("webview_url", False),
    }

    unsubscribe = 'https://digest.example.org/unsubscribe/Ab.c-d_e?x=1&y="2"'
    values = recipient_values(
        render_settings,
        name="Ann <Smith>",
        email="ann@example.org",
        unsubscribe_url=unsubscribe,
        webview_url=webview_url(render_settings, "us-japan-alliance-digest-2-19"),
    )
    doc = parse(substitute(rendered.html, values))
    assert doc.xpath("//a[text()='Unsubscribe']")[0].get("href") == unsubscribe
    views = {a.get("href") for a in doc.xpath("//a[contains(text(), 'browser')]")}
    assert views == {"https://digest.example.org/issues/us-japan-alliance-digest-2-19"}
    assert "Dear Ann <Smith>," in visible_text(doc)
    assert "%%" not in lxml.html.tostring(doc, encoding="unicode")

    text = substitute(rendered.text, values)
    assert f"\n{unsubscribe}\n" in text
    assert "Dear Ann <Smith>,\nHappy New Year!" in text


def test_recipient_values_greeting() -> None:
    settings = Settings()
    kw = {"email": "a@example.org", "unsubscribe_url": "u", "webview_url": "w"}
    assert recipient_values(settings, name="Ann", **kw)["greeting_name"] == "Dear Ann,"
    assert recipient_values(settings, name=None, **kw)["greeting_name"] == "Dear reader,"
    assert recipient_values(settings, name=" \t", **kw)["greeting_name"] == "Dear reader,"
    values = recipient_values(settings, name="Ann\r\n  Smith\x00", **kw)
    assert values["greeting_name"] == "Dear Ann Smith,"
    assert values["name"] == "Ann Smith"
    assert values["email"] == "a@example.org"
    assert (values["unsubscribe_url"], values["webview_url"]) == ("u", "w")


def test_webview_url(render_settings: Settings) -> None:
    assert webview_url(render_settings, "digest-2-19") == (
        "https://digest.example.org/issues/digest-2-19"
    )


# --- subject and preheader -------------------------------------------------------------


def test_subject_and_preheader_defaults() -> None:
    issue = make_issue()
    assert default_subject(issue) == (
        "US-Japan Alliance Digest Vol. 2.19: "
        "Defense chiefs Austin, Kihara meet to discuss next alliance initiatives"
    )
    # The preheader carries on where the subject stops.
    assert default_preheader(issue) == (
        "US & Japan participate in Indo-Pacific Economic Framework meeting · "
        "US-Japan business leaders call on govts to invest in supply chain"
    )
    long = make_issue(headlines=tuple(f"Headline number {i} about alliance" for i in range(20)))
    assert len(default_preheader(long)) <= 150
    assert default_preheader(long).endswith("…")

    given = make_issue(title="  A special\nissue ", preheader="Read this first")
    assert default_subject(given) == "A special issue"
    assert default_preheader(given) == "Read this first"
    titled = make_issue(title="A special issue")
    assert default_preheader(titled).startswith("Defense chiefs Austin, Kihara")


# --- text part -----------------------------------------------------------------------


def test_text_part_is_written_from_the_issue(render_settings: Settings) -> None:
    long_url = "https://example.org/" + "very-long-path-segment/" * 6 + "end"
    issue = make_issue(items=(*make_issue().items, Item(f"See [the report]({long_url}) now.")))
    text = render_issue(issue, render_settings).text

    assert "<" not in text.replace("<script", "")
    assert text.startswith("US-JAPAN ALLIANCE DIGEST\nVol. 2.19 | October 13, 2023\n")
    assert "HEADLINES" in text and "IN DETAIL" in text
    assert " * Defense chiefs Austin, Kihara meet to discuss next alliance\n   initiatives" in text
    flat = " ".join(text.split())
    assert "reaffirmed (https://www.defense.gov/News/Releases/2023/10/04/)" in flat
    assert "hosted a virtual IPEF meeting" in flat
    assert "joint statement (https://example.org/a?b=1&c=2)" in flat
    assert "Alliance Digest is a bi-weekly summary. Write to us (a@example.org)." in flat
    assert "Image: OSD Public Affairs" in text
    assert "alliance@example.org" in text
    assert "Example Policy Institute\n1819 L Street NW, Washington, DC 20036" in text
    assert "Unsubscribe:\n%%unsubscribe_url%%\n" in text
    assert "browser:\n%%webview_url%%\n" in text
    # Wrapped at 72, and no URL is ever broken.
    assert f"({long_url})" in text.split()
    for line in text.splitlines():
        assert len(line) <= TEXT_WIDTH or "://" in line, line
        if len(line) > TEXT_WIDTH:
            assert line.strip() in {long_url, f"({long_url})", f"({long_url}) now."}


# --- size ----------------------------------------------------------------------------


def test_example_issue_renders_well_under_the_gmail_clip(render_settings: Settings) -> None:
    from digestmail.content.source import load_issue

    rendered = render_issue(load_issue(EXAMPLE), render_settings)
    assert rendered.html_bytes < 60_000
    assert rendered.size_warning is None
    assert rendered.subject == "US-Japan Alliance Digest, Vol. 4.1: a new year of alliance work"


def _long_item(n: int) -> Item:
    sentence = (
        f"**Story {n} lead in bold** and then a long sentence about the alliance with a "
        f"[link to a source](https://www.example.org/news/{n}/a-rather-long-article-slug) "
        "and some more words about defense, trade, technology and diplomacy. "
    )
    return Item(sentence * 6)  # about 1,500 characters, six links


def test_ten_long_items_stay_under_the_gmail_clip(render_settings: Settings) -> None:
    issue = make_issue(
        headlines=tuple(f"Headline {n} about a development in the alliance" for n in range(10)),
        items=tuple(_long_item(n) for n in range(10)),
        about="An about paragraph. " * 10,
    )
    rendered = render_issue(issue, render_settings)
    assert len(rendered.html.encode()) < GMAIL_CLIP_BYTES
    assert rendered.size_warning is None


def test_an_oversized_issue_says_so(render_settings: Settings) -> None:
    issue = make_issue(items=tuple(_long_item(n) for n in range(80)))
    rendered = render_issue(issue, render_settings)
    assert rendered.html_bytes > GMAIL_CLIP_BYTES
    assert rendered.size_warning is not None and "Gmail clips" in rendered.size_warning


def test_rendered_issue_is_frozen(render_settings: Settings) -> None:
    rendered = render_issue(make_issue(), render_settings)
    assert isinstance(rendered, RenderedIssue)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendered.subject = "x"  # type: ignore[misc]
    assert rendered.mjml.lstrip().startswith('<mjml lang="en"')


def test_names_are_cleaned_by_one_rule_for_the_list_and_the_greeting() -> None:
    from digestmail.names import clean_name

    kw = {"email": "a@example.org", "unsubscribe_url": "u", "webview_url": "w"}
    for raw in ("Ann\r\n  Smith\x00", "Ali\u200cReza", "Jo\xadhn \u202eDoe", "x" * 300, "\u2028"):
        # What the list stores is what the email greets, whichever way the name came in.
        assert recipient_values(Settings(), name=raw, **kw)["name"] == (clean_name(raw) or "")
    assert clean_name("Ali\u200cReza") == "Ali\u200cReza"  # Persian names keep their joiner
    assert clean_name("Jo\xadhn \u202eDoe") == "John Doe"  # invisible formatting goes


def test_the_web_page_of_an_issue_greets_an_unknown_reader(render_settings: Settings) -> None:
    from digestmail.render import web_reader_values

    values = web_reader_values(render_settings, "digest-2-19")
    assert values == {
        "name": "",
        "greeting_name": "Dear reader,",
        "email": "",
        "unsubscribe_url": "https://digest.example.org/unsubscribe",
        "webview_url": "https://digest.example.org/issues/digest-2-19",
    }


@pytest.mark.parametrize("lang", ["en", "ja-JP", "zh-Hant-TW", "en-x-simple", "de-u-co-phonebk"])
def test_a_language_tag_the_check_accepts_is_one_the_renderer_accepts(
    render_settings: Settings, lang: str
) -> None:
    from digestmail.content.source import parse_issue

    source = EXAMPLE.read_text(encoding="utf-8").replace("lang: en", f"lang: {lang}")
    result = parse_issue(source)
    assert result.ok and result.issue is not None, result.problems
    assert parse(render_issue(result.issue, render_settings).html).get("lang") == lang
