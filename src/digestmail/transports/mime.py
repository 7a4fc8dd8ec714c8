"""Building the RFC 5322 message a recipient receives (SMTP and outbox transports)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from digestmail.placeholders import substitute
from digestmail.transports.base import MessageTemplate, Recipient


def list_unsubscribe(template: MessageTemplate, recipient: Recipient) -> str | None:
    """RFC 2369 List-Unsubscribe value for one recipient, or None when there is nothing."""
    parts = []
    url = recipient.values.get("unsubscribe_url")
    if url:
        parts.append(f"<{url}>")
    if template.unsubscribe_mailto:
        parts.append(f"<{template.unsubscribe_mailto}>")
    return ", ".join(parts) or None


def build_message(template: MessageTemplate, recipient: Recipient, *, domain: str) -> bytes:
    """The complete message bytes for one recipient, as an SMTP server would receive them."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = substitute(template.subject, recipient.values)
    msg["From"] = template.from_addr
    msg["To"] = recipient.email
    if template.reply_to:
        msg["Reply-To"] = template.reply_to
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=domain)
    for name, value in template.headers.items():
        msg[name] = value
    if template.bulk:
        unsubscribe = list_unsubscribe(template, recipient)
        if unsubscribe:
            msg["List-Unsubscribe"] = unsubscribe
            if recipient.values.get("unsubscribe_url"):
                msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(substitute(template.text, recipient.values), cte="quoted-printable")
    msg.add_alternative(
        substitute(template.html, recipient.values), subtype="html", cte="quoted-printable"
    )
    return msg.as_bytes()
