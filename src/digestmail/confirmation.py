"""The confirmation emails: confirm a subscription, or confirm an unsubscribe by email.

Both ask the person to follow a link, because whoever typed the address (or forged
the From header) may not own the mailbox. The MJML is compiled once per kind and
settings -- premailer alone costs ~10 ms -- and each message only splices its link in,
so a ``--double-opt-in`` import of 100,000 rows does not render 100,000 times.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import jinja2

from digestmail.config import Settings
from digestmail.emailhtml import mjml_to_email_html
from digestmail.paths import templates_root
from digestmail.tokens import confirm_url, unsubscribe_url
from digestmail.transports import get_transport
from digestmail.transports.base import BatchResult, MessageTemplate, Recipient, TransportError

log = logging.getLogger(__name__)

# Survives MJML, premailer and HTML escaping untouched; replaced by the link.
_URL_SENTINEL = "https://digestmail.invalid/confirmation-link-sentinel"


class Kind(StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True)
class _Compiled:
    subject: str
    html: str
    text: str


def _copy(kind: Kind, publication: str, confirm_days: int) -> dict[str, str]:
    if kind is Kind.SUBSCRIBE:
        return {
            "subject": f"Please confirm your subscription to {publication}",
            "preheader": "One click and you are on the list.",
            "kicker": "Confirm your subscription",
            "lead": f"Somebody, hopefully you, asked to receive {publication} at this address.",
            "instruction": "To start receiving it, please confirm with the button below.",
            "button": "Yes, subscribe me",
            "note": (
                f"The link works for {confirm_days} days. If you did not ask for this, ignore "
                "this email: you will not be added and we will not write again."
            ),
        }
    return {
        "subject": f"Confirm that you want to unsubscribe from {publication}",
        "preheader": "Follow the link to stop receiving the digest.",
        "kicker": "Confirm your unsubscribe",
        "lead": f"We received an email asking us to stop sending {publication} to this address.",
        "instruction": "To unsubscribe, open the link below and press the button on that page.",
        "button": "Unsubscribe me",
        "note": (
            "If you did not ask for this, ignore this email and nothing changes. "
            "This link keeps working, so you can use it whenever you like."
        ),
    }


@lru_cache(maxsize=16)
def _compile(
    root: Path, kind: Kind, publication: str, postal: str, contact: str, confirm_days: int
) -> _Compiled:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root / "email"),
        autoescape=jinja2.select_autoescape(["j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    context = {
        **_copy(kind, publication, confirm_days),
        "publication": publication,
        "postal_address": postal,
        "contact_address": contact,
        "url": _URL_SENTINEL,
    }
    html = mjml_to_email_html(env.get_template("confirmation.mjml.j2").render(context))
    text_env = env.overlay(autoescape=False)
    text = text_env.get_template("confirmation.txt.j2").render(context)
    if _URL_SENTINEL not in html or _URL_SENTINEL not in text:
        raise RuntimeError("confirmation templates must show {{ url }}")
    return _Compiled(context["subject"], html, text)


def message_for(settings: Settings, kind: Kind, subscriber_id: int) -> MessageTemplate:
    """The complete one-off message for one subscriber (its link signed for them)."""
    compiled = _compile(
        templates_root(settings.templates_dir),
        kind,
        settings.publication,
        settings.postal_address,
        settings.contact_address,
        max(1, settings.confirm_max_age // 86400),
    )
    url = (
        confirm_url(settings, subscriber_id)
        if kind is Kind.SUBSCRIBE
        else unsubscribe_url(settings, subscriber_id)
    )
    return MessageTemplate(
        subject=compiled.subject,
        html=compiled.html.replace(_URL_SENTINEL, url),
        text=compiled.text.replace(_URL_SENTINEL, url),
        from_addr=settings.from_,
        reply_to=settings.effective_reply_to,
        headers={"Auto-Submitted": "auto-generated"},
        bulk=False,
        categories=(f"{kind.value}-confirmation",),
    )


def send(settings: Settings, kind: Kind, people: Iterable[tuple[int, str]]) -> BatchResult:
    """Send one confirmation to each (subscriber id, email); one transport for them all.

    Raises ``TransportError`` when the transport fails as a whole.
    """
    transport = get_transport(settings)
    result = BatchResult()
    try:
        for subscriber_id, email in people:
            answer = transport.send_batch(
                message_for(settings, kind, subscriber_id),
                [Recipient(email, subscriber_id=subscriber_id)],
            )
            result.accepted.extend(answer.accepted)
            result.rejected.extend(answer.rejected)
            for rejected in answer.rejected:
                log.warning(
                    "confirmation to subscriber %s rejected: %s",
                    subscriber_id,
                    redact(rejected.error, [(subscriber_id, email)]),
                )
    finally:
        transport.close()
    return result


def redact(text: str, people: Iterable[tuple[int, str]]) -> str:
    """``text`` with each address replaced by its subscriber id, fit for a log.

    Transports quote the recipient in their errors ("550 <jane@…>: no such user");
    addresses are personal data, and the id is all an operator needs to look one up.
    """
    for subscriber_id, email in people:
        text = re.sub(re.escape(email), f"<subscriber {subscriber_id}>", text, flags=re.IGNORECASE)
    return text


def send_in_background(settings: Settings, kind: Kind, subscriber_id: int, email: str) -> None:
    """``send`` for one person after the web response has gone: never raises, only logs.

    The public form answers before the transport is even contacted, so its response
    time cannot tell whether an address was new, pending or already subscribed. The
    person has been told to check their inbox; if nothing arrives they can ask again.
    """
    people = [(subscriber_id, email)]
    try:
        send(settings, kind, people)
    except TransportError as exc:
        log.error(
            "%s confirmation to subscriber %s not sent: %s",
            kind.value,
            subscriber_id,
            redact(str(exc), people),
        )
    except Exception as exc:  # a background task has nobody else to tell
        log.error(
            "%s confirmation to subscriber %s failed: %s: %s",
            kind.value,
            subscriber_id,
            type(exc).__name__,
            redact(str(exc), people),
        )
