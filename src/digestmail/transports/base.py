"""The one small interface every transport implements.

A campaign hands a transport one ``MessageTemplate`` (rendered once per issue, with
placeholders) and batches of ``Recipient`` values; the transport answers per
recipient. Whole-batch failures raise ``TransportError`` saying whether trying again
can help, so the campaign manager decides between retry and stop without knowing
which provider is behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# What a test send puts before the subject; ``issue check`` counts it in.
TEST_SUBJECT_PREFIX = "[TEST] "


@dataclass(frozen=True)
class MessageTemplate:
    """Everything that is the same for every recipient of one message."""

    subject: str  # may hold text-part placeholders
    html: str  # with HTML-part placeholders
    text: str  # with text-part placeholders
    from_addr: str
    reply_to: str | None = None
    # Static extra headers, e.g. List-Id. Never per-recipient values.
    headers: Mapping[str, str] = field(default_factory=dict)
    # A mailto: for List-Unsubscribe, added next to each recipient's unsubscribe URL.
    unsubscribe_mailto: str | None = None
    # Bulk mail (an issue) carries List-Unsubscribe; one-off mail (a confirmation) not.
    bulk: bool = True
    campaign_id: int | None = None
    categories: tuple[str, ...] = ()
    is_test: bool = False


@dataclass(frozen=True)
class Recipient:
    email: str
    # Placeholder values (see ``digestmail.placeholders.FIELDS``).
    values: Mapping[str, str] = field(default_factory=dict)
    subscriber_id: int | None = None
    delivery_id: int | None = None


@dataclass(frozen=True)
class Accepted:
    email: str
    message_id: str | None


@dataclass(frozen=True)
class Rejected:
    email: str
    error: str
    permanent: bool
    # The receiving mail server refused this recipient for good (an SMTP 5xx at RCPT or
    # DATA): the address bounced, and the bounce policy suppresses it.
    bounced: bool = False


@dataclass
class BatchResult:
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


class TransportError(Exception):
    """A failure of a whole batch.

    ``permanent``: trying again cannot help (bad credentials, a request the provider
    refuses). ``retry_after``: seconds the provider asked us to wait, if it said.
    ``uncertain``: the request may have been taken (a timeout after sending it), so
    posting the batch again may deliver it twice; only staff should decide to.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.uncertain = uncertain


class UnbuildableMessage(ValueError):
    """The template cannot become a valid message for anyone (a header longer than
    RFC 5322 allows, …): no retry helps until the issue itself is changed."""


class Transport(Protocol):
    name: str
    # Most recipients one send_batch call takes.
    max_batch: int

    def send_batch(
        self, template: MessageTemplate, recipients: Sequence[Recipient]
    ) -> BatchResult: ...

    def close(self) -> None: ...
