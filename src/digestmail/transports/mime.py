"""The RFC 5322 message a recipient receives (SMTP and outbox transports), built fast.

The standard library's ``EmailMessage`` costs 1–2.5 ms per message, which caps a
sender near 500 messages a second per core. Every recipient of an issue gets the same
message except for a handful of values, so ``CompiledMessage`` encodes the parts once
(quoted-printable, each placeholder's position kept) and per recipient encodes only
the substituted values, joined to the literals with soft line breaks (``=\\r\\n``),
which a decoder removes: the decoded text is exactly the substituted text.

``render_wire`` gives the same message as SMTP DATA wants it (RFC 5321 §4.5.2: every
line that starts with "." gets another, then the ".\\r\\n" terminator). Stuffing a
43 KiB message with a regular expression, as ``smtplib`` does, costs 150–350 µs; the
literals are stuffed once per template and only the short spliced values per message.
Every piece starts at a line start (each encoded piece ends with a line break), so
stuffing the pieces one by one is stuffing the whole.
"""

from __future__ import annotations

import base64
import binascii
import html
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.utils import formataddr, formatdate

from digestmail.placeholders import Template
from digestmail.transports.base import MAX_LINE, MessageTemplate, Recipient, UnbuildableMessage

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
# RFC 2045: encoded lines are at most 76 characters; leave room for the "=".
_QP_LINE = 75
# utf-8 bytes per RFC 2047 encoded word: base64 of 45 bytes is 60 characters, plus
# "=?utf-8?b?" and "?=" keeps each word under the 75-character limit.
_EW_BYTES = 45

_HEADER_POLICY = policy.SMTP

# What may not appear in an address or URL put into a header or the SMTP envelope.
_BAD_ADDRESS = re.compile('[\r\n<>, \t"]')
_BAD_URL = re.compile("[\r\n <>\t]")


class InvalidRecipient(ValueError):
    """A recipient whose address cannot go into a message (permanent for that recipient)."""


@dataclass(frozen=True)
class RenderedMessage:
    message_id: str  # without the angle brackets
    data: bytes


@dataclass(frozen=True)
class WireMessage:
    """One message ready for SMTP DATA: dot-stuffed, ending in the ".\\r\\n" terminator."""

    message_id: str
    wire: bytes
    # RFC 1870 SIZE: the message's octets, without the added dots and the terminator.
    size: int


def dot_stuff(piece: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency for bytes that begin at the start of a line."""
    stuffed = piece.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def dot_unstuff(wire: bytes) -> bytes:
    """The message a server stores for a DATA payload (terminator included or not)."""
    if wire.endswith(b"\r\n.\r\n") or wire == b".\r\n":
        wire = wire[:-3]
    return (b"\r\n" + wire).replace(b"\r\n.", b"\r\n")[2:]


def list_unsubscribe(template: MessageTemplate, recipient: Recipient) -> str | None:
    """RFC 2369 List-Unsubscribe value for one recipient, or None when there is nothing."""
    url = recipient.values.get("unsubscribe_url")
    mailto = template.unsubscribe_mailto
    if url:
        return f"<{url}>, <{mailto}>" if mailto else f"<{url}>"
    return f"<{mailto}>" if mailto else None


def _one_line(value: str) -> str:
    """A header value on one line: CR/LF in a value would start a new (injected) header."""
    if "\r" in value or "\n" in value:
        return " ".join(value.split())
    return value


def encode_words(text: str) -> str:
    """RFC 2047 base64 encoded words for non-ASCII header text, folded between words."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        # A word never starts with a space: decoders differ on keeping it.
        if size + n > _EW_BYTES - (0 if ch.isspace() else 1):
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return "\r\n ".join(
        "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
    )


def _unstructured(name: str, value: str) -> bytes:
    """A header line for free text (Subject, List-Id…): raw when ASCII, else encoded words."""
    value = _one_line(value)
    if value.isascii():
        line = f"{name}: {value}\r\n"
        if len(line) > MAX_LINE:
            raise UnbuildableMessage(f"the {name} header is longer than {MAX_LINE} characters")
        return line.encode("ascii")
    return f"{name}: {encode_words(value)}\r\n".encode("ascii")


def _address_header(name: str, value: str) -> bytes:
    """A header holding addresses (From, Reply-To), folded by the standard library once."""
    folded: str = _HEADER_POLICY.header_factory(name, _one_line(value)).fold(policy=_HEADER_POLICY)
    return folded.encode("ascii")


def _to_header(email: str, name: str) -> bytes:
    # Apostrophes and the other RFC 5322 atext characters are fine; what could break
    # out of the header or the SMTP envelope is not. Non-ASCII would need SMTPUTF8,
    # which subscribers.normalize already refuses up front.
    if not email.isascii() or _BAD_ADDRESS.search(email) or email.count("@") != 1:
        raise InvalidRecipient(f"cannot address a message to {email!r}")
    name = _one_line(name).strip()
    if not name:
        return f"To: {email}\r\n".encode("ascii")
    if name.isascii():
        return f"To: {formataddr((name, email))}\r\n".encode("ascii")
    return f"To: {encode_words(name)} <{email}>\r\n".encode("ascii")


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def qp_encode(text: str) -> bytes:
    """Quoted-printable bytes for a piece of text, ending in a (soft or hard) line break.

    Ending every piece at a line break lets pieces encoded separately be joined
    without any encoded line growing past 76 characters.
    """
    if not text:
        return b""
    text = _crlf(text)
    if text.endswith("\r\n"):
        return binascii.b2a_qp(text.encode("utf-8"), istext=True)
    # A final CRLF makes b2a_qp use CRLF for its soft breaks too (it copies the
    # first line ending it sees) and encode trailing whitespace; it is dropped again.
    encoded = binascii.b2a_qp((text + "\r\n").encode("utf-8"), istext=True)[:-2]
    head, sep, tail = encoded.rpartition(CRLF)
    out = [head + sep] if sep else []
    while len(tail) > _QP_LINE:
        cut = _QP_LINE
        # never split an "=XX" escape
        if tail[cut - 1 : cut] == b"=":
            cut -= 1
        elif tail[cut - 2 : cut - 1] == b"=":
            cut -= 2
        out.append(tail[:cut] + SOFT_BREAK)
        tail = tail[cut:]
    out.append(tail + SOFT_BREAK)
    return b"".join(out)


class _EncodedPart:
    """One text part: literal QP bytes and the slots between them."""

    def __init__(self, text: str) -> None:
        if not text.endswith("\n"):
            text += "\n"  # what the standard library does: a part ends with a line break
        tpl = Template.parse(text)
        self.literals = tuple(qp_encode(lit) for lit in tpl.literals)
        self.stuffed = tuple(dot_stuff(lit) for lit in self.literals)
        self.stuffed_dots = sum(map(len, self.stuffed)) - sum(map(len, self.literals))
        self.slots = tpl.slots

    def render(
        self,
        values: Mapping[str, str],
        out: list[bytes],
        *,
        wire: bool,
        encoded: dict[str, tuple[bytes, int]],
    ) -> int:
        """Append the part's pieces to ``out``; answer how many dots stuffing added.

        ``encoded`` keeps each text's encoding (and the dots stuffing added to it) for the
        other slots of the message: a value is usually the same in the plain and the HTML
        part (a URL, a name that HTML-escaping leaves as it is). An encoding does not
        depend on where it goes, as every piece starts at a line start.
        """
        literals = self.stuffed if wire else self.literals
        dots = self.stuffed_dots if wire else 0
        out.append(literals[0])
        for i, (field, is_html) in enumerate(self.slots, 1):
            value = values.get(field, "")
            if value:
                text = html.escape(value, quote=True) if is_html else value
                known = encoded.get(text)
                if known is None:
                    piece = qp_encode(text)
                    added = 0
                    if wire:
                        stuffed = dot_stuff(piece)
                        added = len(stuffed) - len(piece)
                        piece = stuffed
                    known = encoded[text] = (piece, added)
                out.append(known[0])
                dots += known[1]
            out.append(literals[i])
        return dots


class _DateCache:
    """``Date`` changes once a second; formatting it per message is wasted work."""

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.value = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
            self.second = now
        return self.value


class CompiledMessage:
    """A ``MessageTemplate`` encoded once; ``render`` splices one recipient in.

    Thread-safe: ``render`` reads only immutable state (the date cache races harmlessly).
    """

    def __init__(self, template: MessageTemplate, *, domain: str) -> None:
        self.template = template
        self.domain = domain
        self._subject = Template.parse(template.subject)
        self._static_subject = (
            None if self._subject.slots else _unstructured("Subject", template.subject)
        )
        head = [_address_header("From", template.from_addr)]
        if template.reply_to:
            head.append(_address_header("Reply-To", template.reply_to))
        self._head = b"".join(head)
        boundary = f"==digestmail-{uuid.uuid4().hex}=="
        static = [_unstructured(k, v) for k, v in template.headers.items()]
        self._static = b"".join(static)
        self._mime = (
            b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
        )
        part_head = '--{b}\r\nContent-Type: text/{t}; charset="utf-8"\r\n' + (
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._text_head = part_head.format(b=boundary, t="plain").encode("ascii")
        # The line break before a boundary belongs to the boundary (RFC 2046), not the part.
        self._html_head = b"\r\n" + part_head.format(b=boundary, t="html").encode("ascii")
        self._end = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._text = _EncodedPart(template.text)
        self._html = _EncodedPart(template.html)
        mailto = template.unsubscribe_mailto
        self._mailto = f"<{_one_line(mailto)}>" if mailto else None
        self._dates = _DateCache()

    def _list_unsubscribe(self, url: str) -> bytes:
        if not self.template.bulk:
            return b""
        entries = []
        if url:
            if _BAD_URL.search(url):
                raise InvalidRecipient(f"unusable unsubscribe URL {url!r}")
            entries.append(f"<{url}>")
        if self._mailto:
            entries.append(self._mailto)
        if not entries:
            return b""
        line = "List-Unsubscribe: " + ", ".join(entries)
        if len(line) > 78:
            line = "List-Unsubscribe: " + ",\r\n ".join(entries)
        out = line + "\r\n"
        if url:
            out += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        return out.encode("ascii")

    def _render(self, recipient: Recipient, *, wire: bool) -> tuple[str, list[bytes], int]:
        # Header lines start with a name and folded lines with a space, so only the
        # part bodies ever hold a line that starts with ".".
        values = recipient.values
        # 128 random bits, as a version 4 UUID has, from the generator seeded from
        # os.urandom (re-seeded in a forked child) rather than a system call per message.
        message_id = f"{random.getrandbits(128):032x}@{self.domain}"
        subject = self._static_subject or _unstructured("Subject", self._subject.substitute(values))
        out = [
            self._dates.get(),
            f"Message-ID: <{message_id}>\r\n".encode("ascii"),
            subject,
            self._head,
            _to_header(recipient.email, values.get("name", "")),
            self._static,
            self._list_unsubscribe(values.get("unsubscribe_url", "")),
            self._mime,
            self._text_head,
        ]
        encoded: dict[str, tuple[bytes, int]] = {}
        dots = self._text.render(values, out, wire=wire, encoded=encoded)
        out.append(self._html_head)
        dots += self._html.render(values, out, wire=wire, encoded=encoded)
        out.append(self._end)
        return message_id, out, dots

    def render(self, recipient: Recipient) -> RenderedMessage:
        message_id, out, _ = self._render(recipient, wire=False)
        return RenderedMessage(message_id, b"".join(out))

    def render_wire(self, recipient: Recipient) -> WireMessage:
        """The message as the DATA payload of an SMTP transaction, terminator included."""
        message_id, out, dots = self._render(recipient, wire=True)
        out.append(b".\r\n")
        wire = b"".join(out)
        return WireMessage(message_id, wire, len(wire) - 3 - dots)


def build_message(template: MessageTemplate, recipient: Recipient, *, domain: str) -> bytes:
    """The complete message bytes for one recipient (for one-off mail).

    For many recipients keep one ``CompiledMessage`` and call ``render``.
    """
    return CompiledMessage(template, domain=domain).render(recipient).data
