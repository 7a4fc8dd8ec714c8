"""MJML to email-ready HTML: compile with mjml-python, then inline CSS with premailer.

Shared by the issue renderer and the one-off emails (confirmations), so every email
the system sends goes through the same, tested pipeline.
"""

from __future__ import annotations

import logging
import re

import premailer
from mjml import mjml2html

_quiet = logging.getLogger("digestmail.premailer")
_quiet.setLevel(logging.ERROR)


_DOCTYPE_RE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)
# mjml-python puts the whole email in one <div role="article" lang=… aria-label=…>,
# the landmark accessible email templates use.
_ARTICLE_RE = re.compile(r"(<body\b[^>]*>)(\s*<div\b[^>]*\brole=\"article\")")


class MJMLError(ValueError):
    pass


def compile_mjml(source: str) -> str:
    """MJML to HTML. mjml-python raises on invalid markup; we name the problem."""
    try:
        html: str = mjml2html(source)
    except Exception as exc:  # mjml-python raises a bare Exception subclass from Rust
        raise MJMLError(f"MJML did not compile: {exc}") from exc
    return html


def add_main_landmark(html: str) -> str:
    """Put the email's article inside a ``main`` landmark, so nothing is outside landmarks.

    ARIA does not count ``article`` as a landmark: opened on its own (a desktop or phone
    mail app, the web view, a browser) an email of only an article leaves screen-reader
    users without a "main" to jump to, and axe-core reports its content as outside any
    landmark. Webmail shows the message inside its own page, where the extra landmark is
    one more entry in the landmark list; the standalone reader gains the one they need.
    """
    head, body_end, tail = html.rpartition("</body>")
    if not body_end or _ARTICLE_RE.search(head) is None:
        return html
    return _ARTICLE_RE.sub(r'\1<div role="main">\2', head, count=1) + "</div></body>" + tail


def _doctype(html: str) -> str | None:
    match = _DOCTYPE_RE.match(html)
    return match.group(0) if match else None


def inline_css(html: str) -> str:
    """Inline CSS into style attributes; media queries and !important stay for phones.

    No network access (external stylesheets are not fetched) and no link rewriting,
    so placeholders in ``href`` survive untouched. premailer (lxml) drops the doctype,
    which would put browsers and some webmail into quirks mode, so it is put back.
    """
    doctype = _doctype(html)
    inlined = str(
        premailer.transform(
            html,
            keep_style_tags=True,
            strip_important=False,
            disable_validation=True,
            allow_network=False,
            allow_loading_external_files=False,
            cssutils_logging_level=logging.CRITICAL,
            cssutils_logging_handler=logging.NullHandler(),
            exclude_pseudoclasses=True,
            disable_leftover_css=False,
        )
    )
    if doctype and _doctype(inlined) is None:
        inlined = f"{doctype.strip()}\n{inlined}"
    return inlined


def mjml_to_email_html(source: str) -> str:
    return inline_css(add_main_landmark(compile_mjml(source)))
