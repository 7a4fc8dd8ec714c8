"""An ``Issue`` turned into the email every subscriber receives: subject, HTML and text.

Rendering is done once per issue (Jinja2 fills the MJML template, mjml-python compiles
it, premailer inlines the CSS); whatever differs per recipient stays a placeholder
(``digestmail.placeholders``) and is substituted at send time, because a render costs
milliseconds and a substitution microseconds.

The plain-text part is written from the ``Issue`` itself rather than scraped from the
HTML, so it reads like a letter (links as URLs, wrapped lines, no layout debris).

Jinja2, MJML and premailer are imported when an issue is rendered, not with this
module: ``issue check`` and the sender use its subject, preheader and per-recipient
values without them.
"""

from __future__ import annotations

import logging
import re
import textwrap
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from digestmail.content.model import LANGUAGE_TAG, Issue
from digestmail.media import MediaError, picture_url
from digestmail.names import clean_name
from digestmail.paths import templates_root
from digestmail.placeholders import token

if TYPE_CHECKING:
    import jinja2
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

    from digestmail.config import Settings

log = logging.getLogger(__name__)

TEMPLATE_NAME = "issue.mjml.j2"
# Gmail clips a message whose HTML exceeds about 102 KB and hides the rest (including
# the unsubscribe link) behind "View entire message". Kept a little under, so that the
# per-recipient URLs substituted later still fit.
GMAIL_CLIP_BYTES = 102 * 1000
TEXT_WIDTH = 72
PREHEADER_MAX = 150

_RTL_LANGS = frozenset({"ar", "dv", "fa", "he", "ps", "ur", "yi"})
_SPACE_RE = re.compile(r"\s+")


class RenderError(ValueError):
    """The issue cannot be rendered as it stands; the message says what to fix."""


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    preheader: str
    mjml: str
    html: str  # with ``%%field:html%%`` placeholders
    text: str  # with ``%%field%%`` placeholders

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def size_warning(self) -> str | None:
        """A sentence for staff when Gmail would clip this issue, else None."""
        if self.html_bytes <= GMAIL_CLIP_BYTES:
            return None
        return (
            f"the HTML is {self.html_bytes / 1000:.0f} KB; Gmail clips messages over "
            f"{GMAIL_CLIP_BYTES / 1000:.0f} KB and hides the unsubscribe link: shorten the issue"
        )


# --- inline Markdown ---------------------------------------------------------------


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # Raw HTML is never allowed: the source is escaped, and only Markdown's own
    # emphasis, code and links survive. Unsafe link schemes are dropped by markdown-it.
    # Made when first needed: a sender only fills in values and never parses Markdown.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "xhtmlOut": True, "linkify": False})


def _is_dead_href(href: str) -> bool:
    """A fragment (``#``, ``#top``) points into a web page that the email is not."""
    return not href.strip() or href.strip().startswith("#")


def _inline_tokens(source: str) -> list[Token]:
    """The inline token stream of ``source``, with links that lead nowhere unwrapped."""
    tokens = _markdown().parseInline(source.strip())
    if not tokens:
        return []
    children = tokens[0].children or []
    kept: list[Token] = []
    dead_depth: list[bool] = []
    for tok in children:
        if tok.type == "link_open":
            dead = _is_dead_href(str(tok.attrGet("href") or ""))
            dead_depth.append(dead)
            if dead:
                continue
        elif tok.type == "link_close":
            dead = dead_depth.pop() if dead_depth else False
            if dead:
                continue
        kept.append(tok)
    tokens[0].children = kept
    return tokens


def inline_html(source: str) -> Markup:
    """Inline Markdown as safe HTML (bold, emphasis, code, links)."""
    tokens = _inline_tokens(source)
    if not tokens:
        return Markup("")
    md = _markdown()
    html = md.renderer.render(tokens, md.options, {})
    return Markup(html)  # markdown-it escaped the source; raw HTML is off


def inline_text(source: str, *, urls: bool = True) -> str:
    """Inline Markdown as plain text; links become ``text (URL)`` unless ``urls`` is off."""
    tokens = _inline_tokens(source)
    if not tokens:
        return ""
    out: list[str] = []
    hrefs: list[tuple[str, int]] = []
    for tok in tokens[0].children or []:
        if tok.type in ("text", "code_inline", "html_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif tok.type == "image":
            out.append(tok.content)
        elif tok.type == "link_open":
            hrefs.append((str(tok.attrGet("href") or ""), len(out)))
        elif tok.type == "link_close" and hrefs:
            href, start = hrefs.pop()
            label = "".join(out[start:]).strip()
            shown = href.removeprefix("mailto:")
            if urls and label not in (href, shown):
                out.append(f" ({shown})")
            elif not label:
                out.append(shown)
    return _SPACE_RE.sub(" ", "".join(out)).strip()


# --- subject, preheader, dates -----------------------------------------------------


def format_date(value: date) -> str:
    """'October 13, 2023': unambiguous for readers on both sides of the Pacific."""
    return f"{value:%B} {value.day}, {value.year}"


def _shorten(text: str, limit: int) -> str:
    text = _SPACE_RE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:·-")
    return cut + "…"


def default_subject(issue: Issue) -> str:
    if issue.title:
        return _SPACE_RE.sub(" ", issue.title).strip()
    base = f"{issue.publication} Vol. {issue.volume}"
    if issue.headlines:
        return f"{base}: {inline_text(issue.headlines[0], urls=False)}"
    return base


def default_preheader(issue: Issue) -> str:
    """The inbox preview line: the headlines the subject does not already show."""
    if issue.preheader:
        return _SPACE_RE.sub(" ", issue.preheader).strip()
    headlines = [inline_text(h, urls=False) for h in issue.headlines]
    if not issue.title and len(headlines) > 1:
        headlines = headlines[1:]  # the first one is in the subject already
    if not headlines:
        return _shorten(f"{issue.publication}, Vol. {issue.volume}", PREHEADER_MAX)
    return _shorten(" · ".join(headlines), PREHEADER_MAX)


def _language(issue: Issue) -> tuple[str, str]:
    lang = issue.lang.strip() or "en"
    if not LANGUAGE_TAG.match(lang):
        raise RenderError(f"lang {issue.lang!r} is not a language tag such as 'en' or 'ja-JP'")
    direction = "rtl" if lang.split("-")[0].lower() in _RTL_LANGS else "ltr"
    return lang, direction


# --- per-recipient values ----------------------------------------------------------


def webview_url(settings: Settings, slug: str) -> str:
    """Where the issue can be read in a browser (the public archive page)."""
    return f"{settings.base_url}/issues/{slug}"


def recipient_values(
    settings: Settings,
    *,
    name: str | None,
    email: str,
    unsubscribe_url: str,
    webview_url: str,
) -> dict[str, str]:
    """The values of every placeholder for one recipient (see ``placeholders.FIELDS``).

    ``greeting_name`` is the whole salutation: "Dear Ann Smith," or, when we do not know
    the name, "Dear reader," rather than an awkward "Dear ," or the email address.
    """
    del settings  # part of the signature so the salutation can become configurable
    clean = clean_name(name) or ""
    return {
        "name": clean,
        "greeting_name": f"Dear {clean}," if clean else "Dear reader,",
        "email": email,
        "unsubscribe_url": unsubscribe_url,
        "webview_url": webview_url,
    }


def web_reader_values(settings: Settings, slug: str) -> dict[str, str]:
    """The placeholder values for the issue's public web page, whose reader is unknown.

    No name and no address; "Unsubscribe" leads to a page explaining that the personal
    link is in the reader's own email (a web page cannot know whose it is).
    """
    return recipient_values(
        settings,
        name=None,
        email="",
        unsubscribe_url=f"{settings.base_url}/unsubscribe",
        webview_url=webview_url(settings, slug),
    )


def unsubscribe_mailto(settings: Settings) -> str:
    """The mailto: half of List-Unsubscribe: a message to the contact address says it."""
    return f"mailto:{settings.contact_address}?subject=unsubscribe"


# --- HTML --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _environment(root: Path) -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root / "email"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _paragraph_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _template_context(
    issue: Issue, settings: Settings, subject: str, preheader: str
) -> dict[str, object]:
    lang, direction = _language(issue)
    hero = None
    if issue.hero is not None:
        if not issue.hero.alt.strip():
            raise RenderError(f"the hero image {issue.hero.url!r} has no alt text")
        try:
            url = picture_url(settings, issue.hero.url)
        except MediaError as exc:
            raise RenderError(f"the hero image {exc}") from exc
        hero = {
            "url": url,
            "alt": issue.hero.alt.strip(),
            "credit": _credit_html(issue.hero.credit, issue.hero.credit_url),
        }
    credit = issue.image_credit if issue.hero is None else None
    return {
        "lang": lang,
        "dir": direction,
        "subject": subject,
        "preheader": preheader,
        "publication": issue.publication,
        "volume": issue.volume,
        "date": format_date(issue.date) if issue.date else None,
        "hero": hero,
        "image_credit": _credit_html(credit, None),
        "greeting": inline_html(issue.greeting) if issue.greeting else None,
        "headlines": [inline_html(h) for h in issue.headlines],
        "items": [inline_html(item.markdown) for item in issue.items],
        "about": inline_html(issue.about) if issue.about else None,
        "contact_address": settings.contact_address,
        "postal_lines": _paragraph_lines(settings.postal_address),
        "unsubscribe_url": token("unsubscribe_url", html_part=True),
        "webview_url": token("webview_url", html_part=True),
        "greeting_name": token("greeting_name", html_part=True),
    }


def _credit_html(credit: str | None, url: str | None) -> Markup | None:
    if not credit or not credit.strip():
        return None
    text = credit.strip()
    if url and not _is_dead_href(url):
        # Let markdown-it validate the URL scheme exactly as it does for links in items.
        label = text.replace("[", "\\[").replace("]", "\\]")
        return inline_html(f"[{label}](<{url}>)")
    return inline_html(text)


def issue_context(issue: Issue, settings: Settings) -> dict[str, object]:
    """What the templates show of an issue: the email's, and the archive's printable page.

    Inline Markdown is already safe HTML, the picture's address is absolute, and the
    per-recipient values are placeholders (a page for everyone leaves them out).
    """
    return _template_context(issue, settings, default_subject(issue), default_preheader(issue))


def render_mjml(issue: Issue, settings: Settings) -> str:
    """The filled MJML source (what ``issue render --format mjml`` shows)."""
    subject = default_subject(issue)
    preheader = default_preheader(issue)
    return _render_template(issue, settings, subject, preheader)


def _render_template(issue: Issue, settings: Settings, subject: str, preheader: str) -> str:
    import jinja2

    root = templates_root(settings.templates_dir)
    context = _template_context(issue, settings, subject, preheader)
    try:
        return _environment(root).get_template(TEMPLATE_NAME).render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"email template {exc.name} not found under {root / 'email'}") from exc
    except jinja2.TemplateError as exc:
        where = (
            f" ({exc.filename}, line {exc.lineno})"
            if isinstance(exc, jinja2.TemplateSyntaxError)
            else ""
        )
        raise RenderError(f"the email template is broken{where}: {exc}") from exc


# --- text --------------------------------------------------------------------------


def _wrap(text: str, *, indent: str = "", first: str | None = None) -> str:
    """Wrap at TEXT_WIDTH; a URL longer than a line stays whole on its own line."""
    return textwrap.fill(
        text,
        width=TEXT_WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _rule() -> str:
    return "-" * TEXT_WIDTH


def render_text(issue: Issue, settings: Settings) -> str:
    """The plain-text part, written from the issue (links as URLs, wrapped at 72)."""
    blocks: list[str] = []
    masthead = [issue.publication.upper()]
    meta = f"Vol. {issue.volume}"
    if issue.date:
        meta += f" | {format_date(issue.date)}"
    masthead.append(meta)
    blocks.append("\n".join(masthead))
    if issue.hero is not None and issue.hero.credit:
        blocks.append(_wrap(f"Image: {inline_text(issue.hero.credit)}"))
    elif issue.image_credit:
        blocks.append(_wrap(f"Image: {inline_text(issue.image_credit)}"))
    if issue.greeting:
        blocks.append(
            token("greeting_name", html_part=False) + "\n" + _wrap(inline_text(issue.greeting))
        )
    if issue.headlines:
        lines = ["HEADLINES", ""]
        lines += [_wrap(inline_text(h), indent="   ", first=" * ") for h in issue.headlines]
        blocks.append("\n".join(lines))
    if issue.items:
        blocks.append("IN DETAIL")
        blocks.extend(_wrap(inline_text(item.markdown)) for item in issue.items)
    if issue.about:
        blocks.append(_rule() + "\n\n" + _wrap(inline_text(issue.about)))
    blocks.append(_footer_text(settings))
    return "\n\n".join(blocks) + "\n"


def _footer_text(settings: Settings) -> str:
    lines = [
        _rule(),
        "",
        f"Questions or comments: {settings.contact_address}",
        *_paragraph_lines(settings.postal_address),
        "",
        "Read this issue in your browser:",
        token("webview_url", html_part=False),
        "",
        "Unsubscribe:",
        token("unsubscribe_url", html_part=False),
    ]
    return "\n".join(_wrap(line) if line else "" for line in lines)


# --- the whole message -------------------------------------------------------------


def render_issue(issue: Issue, settings: Settings) -> RenderedIssue:
    """Subject, preheader, MJML, inlined HTML and text of one issue, placeholders kept."""
    from digestmail.emailhtml import MJMLError, mjml_to_email_html

    subject = default_subject(issue)
    preheader = default_preheader(issue)
    mjml = _render_template(issue, settings, subject, preheader)
    try:
        html = mjml_to_email_html(mjml)
    except MJMLError as exc:
        raise RenderError(str(exc)) from exc
    rendered = RenderedIssue(
        subject=subject,
        preheader=preheader,
        mjml=mjml,
        html=html,
        text=render_text(issue, settings),
    )
    warning = rendered.size_warning
    if warning:
        log.warning("issue %s: %s", issue.slug, warning)
    return rendered
