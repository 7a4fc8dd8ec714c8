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
import socket
import time
import urllib.error
from collections.abc import Mapping, Sequence
from typing import Any

import python_http_client.exceptions
import sendgrid

from digestmail.config import Settings
from digestmail.placeholders import Template, token
from digestmail.subscribers import email_key
from digestmail.transports.base import (
    Accepted,
    BatchResult,
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


class _Body:
    """What is the same in every request of one message, built once per template."""

    def __init__(self, template: MessageTemplate) -> None:
        self.template = template
        used: set[tuple[str, bool]] = set()
        for text in (template.subject, template.text, template.html):
            used.update(Template.parse(text).slots)
        # (token, field, is_html): only the tokens the message uses, to keep requests small.
        self.tokens = sorted((token(f, html_part=h), f, h) for f, h in used)
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
        self.base = base
        self.campaign = str(template.campaign_id) if template.campaign_id is not None else None

    def personalization(self, recipient: Recipient) -> dict[str, Any]:
        values: Mapping[str, str] = recipient.values
        to = {"email": recipient.email}
        name = " ".join(values.get("name", "").split())
        if name:
            to["name"] = name
        p: dict[str, Any] = {"to": [to]}
        if self.tokens:
            subs = {}
            for tok, field, is_html in self.tokens:
                value = values.get(field, "")
                subs[tok] = html.escape(value, quote=True) if is_html else value
            p["substitutions"] = subs
        if self.template.bulk:
            unsubscribe = list_unsubscribe(self.template, recipient)
            if unsubscribe:
                headers = {"List-Unsubscribe": unsubscribe}
                if values.get("unsubscribe_url"):
                    headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
                p["headers"] = headers
        args: dict[str, str] = {}
        if self.campaign is not None:
            args["campaign_id"] = self.campaign
        if recipient.subscriber_id is not None:
            args["subscriber_id"] = str(recipient.subscriber_id)
        if recipient.delivery_id is not None:
            args["delivery_id"] = str(recipient.delivery_id)
        if self.template.is_test:
            args["test"] = "1"
        if args:
            p["custom_args"] = args
        return p

    def request(self, recipients: Sequence[Recipient]) -> dict[str, Any]:
        body = dict(self.base)
        body["personalizations"] = [self.personalization(r) for r in recipients]
        return body


class SendGridTransport:
    name = "sendgrid"
    max_batch = MAX_PERSONALIZATIONS

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

    def _template_body(self, template: MessageTemplate) -> _Body:
        if self._body is None or self._body.template != template:
            self._body = _Body(template)
        return self._body

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        if len(recipients) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} recipients per batch")
        result = BatchResult()
        seen: set[str] = set()
        unique: list[Recipient] = []
        for r in recipients:
            key = email_key(r.email)
            if key in seen:
                # SendGrid would refuse the whole request for one repeated address.
                result.rejected.append(Rejected(r.email, "address repeated in batch", True))
            else:
                seen.add(key)
                unique.append(r)
        if not unique:
            return result
        body = self._template_body(template).request(unique)
        message_id = self._post(body)
        result.accepted.extend(Accepted(r.email, message_id) for r in unique)
        return result

    def _post(self, body: dict[str, Any]) -> str | None:
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.client.client.mail.send.post(
                    request_body=body, timeout=self.timeout
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
            if attempt >= self.max_attempts or waited + delay > self.max_wait:
                raise TransportError(
                    f"{problem} (gave up after {attempt} attempts)",
                    permanent=False,
                    retry_after=retry_after,
                )
            log.info("%s; retrying in %.1f s", problem, delay)
            time.sleep(delay)
            waited += delay

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
