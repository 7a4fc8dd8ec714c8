"""The one small interface every transport implements.

A campaign hands a transport one ``MessageTemplate`` (rendered once per issue, with
placeholders) and batches of ``Recipient`` values; the transport answers per
recipient. Whole-batch failures raise ``TransportError`` saying whether trying again
can help, so the campaign manager decides between retry and stop without knowing
which provider is behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

# What a test send puts before the subject; ``issue check`` counts it in.
TEST_SUBJECT_PREFIX = "[TEST] "
# RFC 5322: a line is at most 998 characters (``issue check`` keeps subjects within it).
MAX_LINE = 998


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


@dataclass(slots=True)
class Recipient:
    """One addressee of a batch. Not frozen: a campaign builds one per recipient, and a
    frozen dataclass's ``__init__`` costs twice as much (treat it as read-only)."""

    email: str
    # Placeholder values (see ``digestmail.placeholders.FIELDS``).
    values: Mapping[str, str] = field(default_factory=dict)
    subscriber_id: int | None = None
    delivery_id: int | None = None
    # True when whoever made the values vouches that the address and every value go into
    # any part as they are (``as_is``) and the name is single-spaced, so that a transport
    # need not look at them again; False means only "not known".
    plain: bool = False


# The bytes a text may hold to go as it is into a text part, an HTML part and a JSON
# string alike: printable ASCII but for what JSON ('"', '\\') or html.escape changes.
AS_IS = bytes(b for b in range(0x20, 0x7F) if chr(b) not in "\"\\&<>'")


def as_is(text: str) -> bool:
    """Whether ``text`` holds only ``AS_IS`` bytes: one C call (what is left once those
    are deleted), where ``isprintable`` alone costs twice as much."""
    return not text.encode("utf-8", "surrogatepass").translate(None, AS_IS)


class Accepted(NamedTuple):
    # Tuples: a batch makes a thousand of them, at a third of a frozen dataclass's cost.
    email: str
    message_id: str | None


class Rejected(NamedTuple):
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


# A batch made ready to go: called (in any thread), it hands the batch over.
Handover = Callable[[], BatchResult]


class Transport(Protocol):
    name: str
    # Most recipients one send_batch call takes.
    max_batch: int
    # Most batches worth having under way at once, each handed over from a thread of
    # its own (a campaign keeps at most this many, and at most
    # DIGESTMAIL_SEND_CONCURRENCY).
    max_in_flight: int

    def send_batch(
        self, template: MessageTemplate, recipients: Sequence[Recipient]
    ) -> BatchResult: ...

    def prepare(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> Handover:
        """``send_batch`` in two halves: what costs CPU here, in the caller's thread, and
        what waits (the network, the disk) in the call returned.

        A campaign prepares each batch in its one thread and hands it over from others:
        in Python, threads that compute slow down every other thread's database and
        network calls, while threads that wait do not. Raises what ``send_batch``
        would, for a batch that cannot be sent as it is.
        """
        ...

    def close(self) -> None: ...
