"""SendGrid transport: one v3 Mail Send request per batch of up to 1000 recipients.

The issue's subject and parts go once per request; what differs per recipient goes
in that recipient's personalization: ``substitutions`` (SendGrid fills them into the
subject and both parts), ``headers`` (List-Unsubscribe: SendGrid does not substitute
inside headers) and ``custom_args`` (campaign, subscriber and delivery ids, which
come back on every event so that it finds its subscriber).

429 and 5xx are retried with exponential backoff and jitter, honouring Retry-After,
within a bounded number of attempts and total wait, then raised as a temporary
``TransportError``; other 4xx are permanent and carry SendGrid's own words. A timeout
is never retried here: SendGrid may have taken the request, so the error is marked
``uncertain`` and the campaign leaves the decision to staff.
"""

from __future__ import annotations

import email.utils
import html
import json
import logging
import random
import re
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any, cast

import python_http_client.exceptions
import sendgrid

from digestmail.config import Settings
from digestmail.placeholders import Template, token
from digestmail.subscribers import email_key
from digestmail.transports.base import (
    Accepted,
    BatchResult,
    Handover,
    MessageTemplate,
    Recipient,
    Rejected,
    TransportError,
)
from digestmail.transports.mime import list_unsubscribe

log = logging.getLogger(__name__)

MAX_PERSONALIZATIONS = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255


class _DropSecrets(logging.Filter):
    """python_http_client logs request headers (the API key) and payloads at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("HEADERS:") or msg.startswith("PAYLOAD:"))


logging.getLogger("python_http_client.client").addFilter(_DropSecrets())


def _address(value: str) -> dict[str, str]:
    name, addr = email.utils.parseaddr(value)
    if not addr:
        raise TransportError(f"not an email address: {value!r}", permanent=True)
    return {"email": addr, "name": name} if name else {"email": addr}


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def describe_errors(body: bytes | str | None) -> str:
    """SendGrid's ``{"errors": [{"message", "field"}]}`` as one readable line."""
    if not body:
        return "no details given"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return text.strip()[:500]
    parts = []
    for err in errors:
        if not isinstance(err, dict):
            continue
        message = str(err.get("message") or "").strip()
        field = err.get("field")
        parts.append(f"{message} (field {field})" if field else message)
    return "; ".join(p for p in parts if p) or text.strip()[:500]


_PERMANENT_WORDS = {
    400: "SendGrid refused the request (400)",
    401: "SendGrid refused the API key (401)",
    403: "SendGrid refused access (403): check the API key's Mail Send permission and the "
    "verified sender",
    413: "SendGrid refused the request as too large (413)",
}


# A str as a JSON string literal, non-ASCII escaped (what ``json.dumps`` does), in C.
_json = json.encoder.encode_basestring_ascii
# Whether html.escape would change a value (most values: no, and this is one C call).
_html_special = re.compile("[&<>\"']").search
# Not "application/json" exactly, so that the client sends our JSON text as it is
# rather than serialising a dict again (SendGrid's own .NET client sends the same).
_CONTENT_TYPE = "application/json; charset=utf-8"


class _Payload(bytes):
    """The encoded request body. python_http_client formats every payload into a debug
    line before asking whether debug logging is on (13 ms for a request of 1000, a
    fifth of a send's CPU); formatted, this is its size only."""

    def __format__(self, spec: str) -> str:
        return f"<{len(self)} bytes of JSON>"


class _JSONText:
    """A request body of JSON text, which the client encodes into a ``_Payload``.

    Not a str subclass: making one from the text copies it (0.7 MB for a request of
    1000); the client only asks for ``encode``.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> _Payload:
        return _Payload(self.text.encode(encoding, errors))


class _Blank(str):
    """The name of what a frame's blank is filled with (see ``_frame``), not text."""


# A personalization's writer: its text, given the values of the recipient's keys as
# written in the text part and in the HTML part, its address and ``to`` name, and its
# two ids.
_Frame = Callable[[Sequence[str], Sequence[str], str, str, int, int], str]


def _frame(items: Sequence[str], keys: int) -> _Frame:
    """A frame from literal text (str) and the blanks between (``_Blank``): ``t0``… and
    ``h0``… name the keys' values for the text and the HTML part, ``a`` the address,
    ``n`` the name, ``sid`` and ``did`` the ids (written as ``str`` writes them).

    The writer is compiled for the frame, as ``dataclasses`` writes its ``__init__``:
    one f-string of the literals and the blanks, where joining a copy of the literals
    with the values put in between cost twice as much (a quarter of a µs a recipient).
    Its source holds names only, never text of the message: the literals come in as
    arguments of the function that makes the writer.
    """
    literals = [""]
    blanks: list[str] = []
    for item in items:
        if isinstance(item, _Blank):
            blanks.append(item)
            literals.append("")
        else:
            literals[-1] += item
    body = "".join(f"{{L{k}}}{{{blank}}}" for k, blank in enumerate(blanks))
    source = (
        f"def make({', '.join(f'L{k}' for k in range(len(literals)))}):\n"
        "    def write(t, h, a, n, sid, did):\n"
        f"        {''.join(f't{i}, ' for i in range(keys))}= t\n"
        f"        {''.join(f'h{i}, ' for i in range(keys))}= h\n"
        f"        return f'{body}{{L{len(blanks)}}}'\n"
        "    return write\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<sendgrid personalization frame>", "exec"), namespace)
    return cast(_Frame, namespace["make"](*literals))


@dataclass(frozen=True, slots=True)
class _Campaign:
    """How a campaign's recipient's personalization is written (see ``_Body.personalization``)."""

    texts: Callable[[Mapping[str, str]], tuple[str, ...]]  # values of keys, in order
    name_at: int  # where "name" and "unsubscribe_url" are among them
    link_at: int
    named: _Frame  # with the ``to`` name
    bare: _Frame  # without


class _Body:
    """A request of one message, compiled once per template: the JSON text of what is the
    same in every request, and of each personalization around its per-recipient values.

    Per recipient this costs its values put into a prepared frame (under 2 µs for a
    campaign's recipient, ``bench/recipients.py``), where building dicts for
    ``json.dumps`` cost 10–15 µs.
    """

    def __init__(self, template: MessageTemplate) -> None:
        self.template = template
        used: set[tuple[str, bool]] = set()
        for text in (template.subject, template.text, template.html):
            used.update(Template.parse(text).slots)
        # Per field the message uses: its '"TOKEN":' for the text part and for the HTML
        # part, each None when that part does not use it (requests stay small).
        self.fields = [
            (
                field,
                _json(token(field, html_part=False)) + ":" if (field, False) in used else None,
                _json(token(field, html_part=True)) + ":" if (field, True) in used else None,
            )
            for field in sorted({f for f, _ in used})
        ]
        base: dict[str, Any] = {
            "from": _address(template.from_addr),
            "subject": template.subject,
            "content": [
                {"type": "text/plain", "value": template.text or " "},
                {"type": "text/html", "value": template.html or " "},
            ],
            "mail_settings": {"sandbox_mode": {"enable": False}},
        }
        if template.reply_to:
            base["reply_to"] = _address(template.reply_to)
        if template.headers:
            base["headers"] = dict(template.headers)
        categories = [c[:MAX_CATEGORY_LENGTH] for c in template.categories if c]
        if categories:
            base["categories"] = list(dict.fromkeys(categories))[:MAX_CATEGORIES]
        # '{…,"personalizations":[' + the personalizations + ']}'
        self.head = json.dumps(base, separators=(",", ":"))[:-1] + ',"personalizations":['
        args = []
        if template.campaign_id is not None:
            args.append('"campaign_id":' + _json(str(template.campaign_id)))
        if template.is_test:
            args.append('"test":"1"')
        self.fixed_args = ",".join(args)
        # A campaign's recipient has both ids: its custom_args are then one %-format.
        fixed = self.fixed_args.replace("%", "%%") + "," if self.fixed_args else ""
        self.args_frame = ',"custom_args":{' + fixed + '"subscriber_id":"%d","delivery_id":"%d"}'
        self._campaign = self._campaign_frame()

    def _campaign_frame(self) -> _Campaign | None:
        """A campaign's recipient's personalization as a frame; None when the message is
        not bulk mail (a confirmation), whose few recipients take ``general``.

        Such a recipient has both ids and an unsubscribe link, so everything but the
        strings is the same for all of them, in the order ``general`` writes it. The
        strings are JSON string literals without their quotes (the frame has them): each
        key's value for the text part, then for the HTML part, the address, the ``to``
        name and the two ids. JSON escapes a string character by character, so the
        List-Unsubscribe text is the escaped link between the fixed, escaped rest.
        """
        if not self.template.bulk:
            return None
        keys = [field for field, _, _ in self.fields]
        keys += [key for key in ("name", "unsubscribe_url") if key not in keys]
        link_at = keys.index("unsubscribe_url")
        subs: list[str] = []
        sep = ',"substitutions":{'
        for i, (_field, text_key, html_key) in enumerate(self.fields):
            if text_key:
                subs += (sep + text_key + '"', _Blank(f"t{i}"), '"')
                sep = ","
            if html_key:
                subs += (sep + html_key + '"', _Blank(f"h{i}"), '"')
                sep = ","
        if subs:
            subs.append("}")
        mailto = self.template.unsubscribe_mailto
        rest = _json(f">, <{mailto}>")[1:-1] if mailto else ">"
        fixed = self.fixed_args + "," if self.fixed_args else ""
        tail = [
            *subs,
            ',"headers":{"List-Unsubscribe":"<',
            _Blank(f"t{link_at}"),
            rest + '","List-Unsubscribe-Post":"List-Unsubscribe=One-Click"}',
            ',"custom_args":{' + fixed + '"subscriber_id":"',
            _Blank("sid"),
            '","delivery_id":"',
            _Blank("did"),
            '"}}',
        ]
        address, name = _Blank("a"), _Blank("n")
        return _Campaign(
            texts=itemgetter(*keys),
            name_at=keys.index("name"),
            link_at=link_at,
            named=_frame(
                ['{"to":[{"email":"', address, '","name":"', name, '"}]', *tail], len(keys)
            ),
            bare=_frame(['{"to":[{"email":"', address, '"}]', *tail], len(keys)),
        )

    def personalization(self, recipient: Recipient) -> str:
        """One recipient's personalization as JSON text (see ``general``).

        A campaign's recipient (both ids, an unsubscribe link) fills the frame compiled
        for the message. Usually its values are ``plain`` (the campaign looked at them
        when it made them) and go in as they are; otherwise they are checked at once for
        what JSON or HTML would escape. Anyone else takes ``general``; both write the
        very same text, which ``tests/test_transports_sendgrid.py`` checks for any
        message and values, plain or not.
        """
        campaign = self._campaign
        sid = recipient.subscriber_id
        did = recipient.delivery_id
        if campaign is None or sid is None or did is None:
            return self.general(recipient)
        email = recipient.email
        try:
            texts = campaign.texts(recipient.values)
        except KeyError:  # a value missing (general writes "")
            return self.general(recipient)
        if not texts[campaign.link_at]:
            return self.general(recipient)
        name = texts[campaign.name_at]
        if recipient.plain:  # a campaign's usual recipient: nothing to look at again
            return (campaign.named if name else campaign.bare)(texts, texts, email, name, sid, did)
        try:
            every = "".join(texts) + email
        except TypeError:  # a value that is not text
            return self.general(recipient)
        to_name = " ".join(name.split())
        plain: Sequence[str] = texts
        # JSON writes printable ASCII but for '"' and '\\' as it is (the C encoder's own
        # test); anything else is escaped, each value once.
        if not (every.isascii() and every.isprintable() and '"' not in every and "\\" not in every):
            plain = [_json(text)[1:-1] for text in texts]
            email = _json(email)[1:-1]
            to_name = _json(to_name)[1:-1]
        escaped = plain
        if _html_special(every):
            escaped = [_json(text)[1:-1] for text in map(html.escape, texts)]
        write = campaign.named if to_name else campaign.bare
        return write(plain, escaped, email, to_name, sid, did)

    def general(self, recipient: Recipient) -> str:
        """One recipient's personalization as JSON text: ``to``, ``substitutions`` (filled
        into subject and parts), ``headers`` (List-Unsubscribe, which SendGrid does not
        substitute into) and ``custom_args`` (the ids every event brings back).

        Any recipient, any message: the text written piece by piece, a value HTML-escaped
        only when it holds a character that needs it. A campaign's recipients take the
        frame in ``personalization`` instead, to the same text.
        """
        values = recipient.values
        out = ['{"to":[{"email":', _json(recipient.email)]
        name = values.get("name")
        if name:
            name = " ".join(name.split())
            if name:
                out += (',"name":', _json(name))
        out.append("}]")
        if self.fields:
            sep = ',"substitutions":{'
            for field, text_key, html_key in self.fields:
                value = values.get(field, "")
                encoded = _json(value)
                if text_key:
                    out += (sep, text_key, encoded)
                    sep = ","
                if html_key:
                    if _html_special(value):
                        encoded = _json(html.escape(value, quote=True))
                    out += (sep, html_key, encoded)
                    sep = ","
            out.append("}")
        if self.template.bulk:
            unsubscribe = list_unsubscribe(self.template, recipient)
            if unsubscribe:
                out += (',"headers":{"List-Unsubscribe":', _json(unsubscribe))
                if values.get("unsubscribe_url"):
                    out.append(',"List-Unsubscribe-Post":"List-Unsubscribe=One-Click"')
                out.append("}")
        sid = recipient.subscriber_id
        did = recipient.delivery_id
        if sid is not None and did is not None:
            out.append(self.args_frame % (sid, did))
        else:
            args = [self.fixed_args] if self.fixed_args else []
            if sid is not None:
                args.append(f'"subscriber_id":"{int(sid)}"')
            if did is not None:
                args.append(f'"delivery_id":"{int(did)}"')
            if args:
                out += (',"custom_args":{', ",".join(args), "}")
        out.append("}")
        return "".join(out)

    def request(self, recipients: Sequence[Recipient]) -> str:
        """The whole request body as JSON text.

        Written in one join: the head and the end go onto the first and last pieces, so
        that the 0.7 MB text of a request of 1000 is copied once, not once per ``+``.
        """
        parts = list(map(self.personalization, recipients))
        if not parts:
            return self.head + "]}"
        parts[0] = self.head + parts[0]
        parts[-1] += "]}"
        return ",".join(parts)


class _SharedPause:
    """The wait SendGrid asked for (Retry-After on a 429) or that backoff chose after a
    failure, shared by every request of one transport: with several requests in flight,
    one told to slow down holds back all of them instead of each finding out alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._why = ""

    def hold(self, seconds: float, why: str) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            if until > self._until:
                self._until, self._why = until, why

    def left(self) -> tuple[float, str]:
        """Seconds still to wait (0 when none), and why."""
        with self._lock:
            return max(0.0, self._until - time.monotonic()), self._why


class SendGridTransport:
    name = "sendgrid"
    max_batch = MAX_PERSONALIZATIONS
    # A request waits for its answer, not for us: as many in flight as the settings allow.
    max_in_flight = 32

    def __init__(
        self,
        settings: Settings,
        *,
        max_attempts: int = 5,
        backoff: float = 1.0,
        backoff_cap: float = 8.0,
        max_wait: float = 10.0,
    ) -> None:
        """``max_wait`` bounds the total sleeping per batch; beyond it the error is raised
        with ``retry_after`` so that the campaign waits instead, in short steps that notice
        a pause or cancel at once (a transport's own sleep cannot).

        One transport may send several batches at once (a campaign keeps up to
        ``DIGESTMAIL_SEND_CONCURRENCY`` requests in flight): it is thread-safe, and the
        wait after a 429 (or a failure) is shared by all of them (``_SharedPause``).
        """
        if settings.sendgrid_api_key is None:
            raise ValueError("the sendgrid transport needs SENDGRID_API_KEY")
        self.client = sendgrid.SendGridAPIClient(
            api_key=settings.sendgrid_api_key.get_secret_value(),
            host=settings.sendgrid_api_host,
        )
        self.timeout = settings.sendgrid_timeout
        self.max_batch = min(settings.batch_size, MAX_PERSONALIZATIONS)
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.max_wait = max_wait
        self._body: _Body | None = None
        self._lock = threading.Lock()
        self._pause = _SharedPause()

    def _template_body(self, template: MessageTemplate) -> _Body:
        with self._lock:
            if self._body is None or self._body.template != template:
                self._body = _Body(template)
            return self._body

    def prepare(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> Handover:
        """The request is checked and written here; the call returned posts it."""
        if len(recipients) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} recipients per batch")
        rejected: list[Rejected] = []
        keys = [email_key(r.email) for r in recipients]
        unique: Sequence[Recipient] = recipients
        if len(set(keys)) < len(keys):
            seen: set[str] = set()
            unique = []
            for r, key in zip(recipients, keys, strict=True):
                if key in seen:
                    # SendGrid would refuse the whole request for one repeated address.
                    rejected.append(Rejected(r.email, "address repeated in batch", True))
                else:
                    seen.add(key)
                    unique.append(r)
        if not unique:
            return partial(BatchResult, [], rejected)
        body = self._template_body(template).request(unique)
        emails = [r.email for r in unique]

        def post() -> BatchResult:
            message_id = self._post(body)
            return BatchResult([Accepted(e, message_id) for e in emails], rejected)

        return post

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        return self.prepare(template, recipients)()

    def _post(self, body: str) -> str | None:
        waited = 0.0
        attempt = 0
        while True:
            # Wait out whatever SendGrid asked of any request of ours, not only this one's.
            hold, why = self._pause.left()
            if hold > 0:
                if waited + hold > self.max_wait:
                    # Nothing of this batch was sent; the caller waits in its own steps.
                    raise TransportError(
                        f"{why} (not sent: waiting {hold:.0f} s)", permanent=False, retry_after=hold
                    )
                time.sleep(hold)
                waited += hold
            attempt += 1
            try:
                response = self.client.client.mail.send.post(
                    request_body=_JSONText(body),
                    request_headers={"Content-Type": _CONTENT_TYPE},
                    timeout=self.timeout,
                )
            except python_http_client.exceptions.HTTPError as exc:
                status = int(exc.status_code)
                details = describe_errors(exc.body)
                if status != 429 and status < 500:
                    words = _PERMANENT_WORDS.get(status, f"SendGrid refused the request ({status})")
                    raise TransportError(f"{words}: {details}", permanent=True) from None
                retry_after = _retry_after(exc.headers)
                problem = f"SendGrid answered {status}: {details}"
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError | socket.timeout):
                    raise self._no_answer() from None
                retry_after = None
                problem = f"cannot reach SendGrid: {reason}"
            except TimeoutError:
                raise self._no_answer() from None
            except OSError as exc:
                retry_after = None
                problem = f"connection to SendGrid failed: {exc}"
            else:
                if response.status_code != 202:
                    log.warning("SendGrid answered %s instead of 202", response.status_code)
                headers = response.headers
                value = headers.get("X-Message-Id") if headers is not None else None
                return str(value) if value else None
            delay = min(self.backoff_cap, self.backoff * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: senders do not retry in step
            if retry_after is not None:
                delay = max(delay, retry_after)
            # Every request waits, so that the others do not run into the same answer.
            self._pause.hold(delay, problem)
            if attempt >= self.max_attempts or waited + delay > self.max_wait:
                raise TransportError(
                    f"{problem} (gave up after {attempt} attempts)",
                    permanent=False,
                    retry_after=retry_after,
                )
            log.info("%s; retrying in %.1f s", problem, delay)

    def _no_answer(self) -> TransportError:
        """A timeout: SendGrid may have accepted the batch, so it must not be re-posted
        blindly (up to 1,000 people would get the issue twice)."""
        return TransportError(
            f"SendGrid did not answer within {self.timeout:g} s; it may or may not have "
            "accepted the request",
            permanent=False,
            uncertain=True,
        )

    def close(self) -> None:
        pass
