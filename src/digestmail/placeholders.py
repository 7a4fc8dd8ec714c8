"""Per-recipient placeholders in a rendered issue.

An issue is rendered once; what differs per recipient (name, unsubscribe link, web
view link) is left as a token that survives MJML and premailer and is substituted at
send time. The HTML part uses its own tokens so that a value can be HTML-escaped
there and kept literal in the text part, also when SendGrid does the substituting
(its ``substitutions`` apply to both parts alike).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

# The per-recipient fields every part may use.
FIELDS: tuple[str, ...] = ("name", "greeting_name", "email", "unsubscribe_url", "webview_url")

_TOKEN_RE = re.compile(r"%%([a-z_]+)(:html)?%%")


def token(field: str, *, html_part: bool) -> str:
    """The token for ``field`` in the HTML or the text part."""
    if field not in FIELDS:
        raise KeyError(f"unknown placeholder field {field!r}")
    return f"%%{field}:html%%" if html_part else f"%%{field}%%"


@dataclass(frozen=True)
class Template:
    """A part split once at its tokens, so that each recipient costs one join.

    ``chunks`` alternates literal text and (field, is_html) pairs.
    """

    literals: tuple[str, ...]
    slots: tuple[tuple[str, bool], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        literals: list[str] = []
        slots: list[tuple[str, bool]] = []
        pos = 0
        for m in _TOKEN_RE.finditer(text):
            if m.group(1) not in FIELDS:
                continue
            literals.append(text[pos : m.start()])
            slots.append((m.group(1), m.group(2) is not None))
            pos = m.end()
        literals.append(text[pos:])
        return cls(tuple(literals), tuple(slots))

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(f for f, _ in self.slots)

    def substitute(self, values: Mapping[str, str]) -> str:
        """Fill every slot; a missing value is an empty string, HTML slots are escaped."""
        out = [self.literals[0]]
        for (field, is_html), literal in zip(self.slots, self.literals[1:], strict=True):
            value = values.get(field, "")
            out.append(html.escape(value, quote=True) if is_html else value)
            out.append(literal)
        return "".join(out)


def fill(text: str, values: Mapping[str, str]) -> str:
    """Substitute the fields in ``values`` only, leaving every other token in place.

    For values the same for every recipient of a message (the web view link): filled
    once per message, they cost nothing per recipient. A filled value becomes part of the
    text, so it must not hold a token itself (a link never does).
    """

    def one(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        if value is None:
            return m.group(0)
        return html.escape(value, quote=True) if m.group(2) else value

    return _TOKEN_RE.sub(one, text)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """One-off substitution; for many recipients parse a ``Template`` once instead."""
    return Template.parse(text).substitute(values)
