"""The message of an issue: its per-issue template, each recipient's values, and test sends.

The template is checked by building it once before anyone is claimed: an issue that
cannot become a valid message (stored before ``issue check`` knew the limit, say) fails
its campaign at once, with nobody left in flight, instead of crashing in every batch.
"""

from __future__ import annotations

import email.errors
from collections.abc import Sequence

from sqlalchemy import select

from digestmail import render
from digestmail.campaigns.errors import IssueNotFound, MessageNotBuilt
from digestmail.campaigns.tables import S
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Issue
from digestmail.names import clean_name
from digestmail.placeholders import fill
from digestmail.subscribers import email_key
from digestmail.tokens import UnsubscribeLinks
from digestmail.transports import get_transport
from digestmail.transports.base import (
    AS_IS,
    TEST_SUBJECT_PREFIX,
    BatchResult,
    MessageTemplate,
    Recipient,
    Transport,
    as_is,
)
from digestmail.transports.mime import CompiledMessage
from digestmail.transports.outbox import sender_domain


def message_template(
    settings: Settings, issue: Issue, campaign_id: int | None, *, is_test: bool = False
) -> MessageTemplate:
    """The per-issue half of every message; recipients only add placeholder values.

    The web view link is the same for every recipient: it is filled in here, once.
    """
    same = {"webview_url": render.webview_url(settings, issue.slug)}
    subject = f"{TEST_SUBJECT_PREFIX}{issue.subject}" if is_test else issue.subject
    return MessageTemplate(
        subject=fill(subject, same),
        html=fill(issue.html, same),
        text=fill(issue.text, same),
        from_addr=settings.from_,
        reply_to=settings.effective_reply_to,
        headers={"List-Id": settings.effective_list_id},
        unsubscribe_mailto=render.unsubscribe_mailto(settings),
        campaign_id=campaign_id,
        categories=(issue.publication, issue.slug),
        is_test=is_test,
    )


class RecipientValues:
    """Per-recipient placeholder values; everything per-issue is computed once.

    The values are ``render.recipient_values``'s, written out here: this runs once per
    recipient of a send, and the keyword call and the settings it takes cost a tenth of
    the whole (``tests/campaigns/test_message.py`` checks that both agree for any name).
    """

    def __init__(self, settings: Settings, slug: str) -> None:
        self.settings = settings
        self.webview = render.webview_url(settings, slug)
        self.links = UnsubscribeLinks(settings)
        # The bound method: calling the object itself costs 0.1 µs more a recipient.
        self._link = self.links.__call__
        self.mailto = render.unsubscribe_mailto(settings)
        # What every recipient's values share: the greetings' words and the links but
        # for the tokens (base64url and dots, which go as they are). When all of it goes
        # into any part as it is, a recipient's values do when its name and address do.
        shared = ("Dear reader,", "Dear ,", self.webview, self.mailto, self.links.prefix)
        self._shared_as_is = all(map(as_is, shared))

    def tick(self) -> None:
        """Take the links' signing time now (once per batch, not per recipient)."""
        self.links.tick()

    def __call__(self, subscriber_id: int | None, email: str, name: str | None) -> dict[str, str]:
        """The values alone, for a reader outside any campaign (a sample, a preview)."""
        return dict(self.recipient(None, subscriber_id, email, name).values)

    def recipient(
        self, delivery_id: int | None, subscriber_id: int | None, email: str, name: str | None
    ) -> Recipient:
        """The recipient with its values, ``plain`` when they and the address go into any
        part as they are (most do: the transport then need not look at them again)."""
        clean = clean_name(name)
        # clean_name's name is single-spaced, as ``plain`` asks. (``as_is`` written out:
        # the call costs a third of the check.)
        mine = email + clean if clean else email
        plain = self._shared_as_is and not mine.encode("utf-8", "surrogatepass").translate(
            None, AS_IS
        )
        values = {
            "name": clean or "",
            "greeting_name": f"Dear {clean}," if clean else "Dear reader,",
            "email": email,
            "unsubscribe_url": self.mailto if subscriber_id is None else self._link(subscriber_id),
            "webview_url": self.webview,
        }
        return Recipient(email, values, subscriber_id, delivery_id, plain)


# The reader a message is shown to before it has real recipients (checks, previews).
SAMPLE_READER = ("reader@example.org", "A Reader")


def sample_reader_values(settings: Settings, slug: str) -> dict[str, str]:
    """Every placeholder's value for the sample reader (not on the list: a mailto: link
    stands in for the unsubscribe link)."""
    return RecipientValues(settings, slug)(None, *SAMPLE_READER)


def load_issue(db: Database, slug: str) -> Issue:
    with db.session() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == slug))
    if issue is None:
        raise IssueNotFound(slug)
    return issue


def checked_template(
    settings: Settings, issue: Issue, campaign_id: int | None, *, is_test: bool = False
) -> MessageTemplate:
    """``message_template``, built once for a sample reader; ``MessageNotBuilt`` if it cannot be.

    Every transport's message is an RFC 5322 message in the end (SendGrid builds its own),
    so the check is the strict builder's whatever the transport. A few milliseconds, once
    per run.
    """
    template = message_template(settings, issue, campaign_id, is_test=is_test)
    sample = sample_reader_values(settings, issue.slug)
    try:
        CompiledMessage(template, domain=sender_domain(settings.from_)).render(
            Recipient(SAMPLE_READER[0], sample)
        )
    except (ValueError, email.errors.MessageError) as exc:
        raise MessageNotBuilt(issue.slug, str(exc), campaign_id=campaign_id) from exc
    return template


def send_test(
    db: Database,
    settings: Settings,
    slug: str,
    addresses: Sequence[str],
    *,
    transport: Transport | None = None,
) -> BatchResult:
    """Send the issue to these addresses only, marked as a test; the list is not touched.

    An address on the list gets its own working unsubscribe link; any other address gets
    the mailto: link (there is no subscriber to unsubscribe). Raises ``MessageNotBuilt``
    before sending anything if the issue cannot become a valid message.
    """
    issue = load_issue(db, slug)
    template = checked_template(settings, issue, None, is_test=True)
    cleaned = [a.strip() for a in addresses]
    keys = [email_key(a) for a in cleaned]
    with db.engine.connect() as conn:
        known = {
            r.email_key: (r.id, r.name)
            for r in conn.execute(
                select(S.c.id, S.c.name, S.c.email_key).where(S.c.email_key.in_(keys))
            )
        }
    values = RecipientValues(settings, slug)
    recipients = []
    for address, key in zip(cleaned, keys, strict=True):
        sid, name = known.get(key, (None, None))
        recipients.append(values.recipient(None, sid, address, name))
    own = transport is None
    tx = transport or get_transport(settings)
    try:
        return tx.send_batch(template, recipients)
    finally:
        if own:
            tx.close()
