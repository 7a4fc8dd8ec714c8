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


class MJMLError(ValueError):
    pass


def compile_mjml(source: str) -> str:
    """MJML to HTML. mjml-python raises on invalid markup; we name the problem."""
    try:
        html: str = mjml2html(source)
    except Exception as exc:  # mjml-python raises a bare Exception subclass from Rust
        raise MJMLError(f"MJML did not compile: {exc}") from exc
    return html


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
    return inline_css(compile_mjml(source))
