"""A fake SendGrid v3 ``POST /v3/mail/send`` on 127.0.0.1 that checks what SendGrid checks.

The rules follow SendGrid's Mail Send reference and its error list: Bearer auth,
1..1000 personalizations (and at most 1000 recipients in all), each with a ``to``,
an address at most once per request, string-only ``substitutions`` and
``custom_args`` (custom args at most 10,000 bytes per personalization), ``from``,
``subject`` (top level or in every personalization), ``content`` with text/plain
first and then text/html, and no reserved header. Errors come back as SendGrid
shapes them: ``{"errors": [{"message", "field", "help"}]}``.

It also serves SendGrid's suppression lists (``GET /v3/suppression/{bounces, blocks,
spam_reports, invalid_emails, unsubscribes}``) from ``suppressions``, filtered by
``start_time``/``end_time`` (on each entry's ``created``) and paged by ``limit``/``offset``
as SendGrid does, for ``events reconcile``.

Use it as a context manager::

    with FakeSendGrid(api_key="SG.test") as fake:
        settings = Settings(sendgrid_api_host=fake.url, sendgrid_api_key="SG.test", ...)
        fake.fail_next(429, times=2, retry_after=1)
        fake.stall_next(2.0)  # accept the next request but answer only 2 s later

``latency`` answers every request that long after it arrived, as a remote API does
(benchmarks); ``first`` keeps the first accepted body even when ``record`` is off.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

MAX_PERSONALIZATIONS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
SUPPRESSION_LISTS = frozenset(
    {"bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes"}
)
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


class _Invalid(Exception):
    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it (monotonic clock)."""

    arrived: float
    answered: float
    status: int


@dataclass(frozen=True)
class Scripted:
    status: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None


def _check_headers(headers: Any, field: str) -> None:
    if not isinstance(headers, dict):
        raise _Invalid("Invalid type. Expected: object, given: " + type(headers).__name__, field)
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            raise _Invalid(
                "The following headers are reserved and cannot be set: x-sg-id, x-sg-eid, "
                "received, dkim-signature, Content-Type, Content-Transfer-Encoding, To, From, "
                "Subject, Reply-To, CC, BCC",
                f"{field}.{name}",
            )
        if not isinstance(value, str):
            raise _Invalid("Headers must be strings.", f"{field}.{name}")


def _check_strings(obj: Any, field: str, what: str) -> None:
    if not isinstance(obj, dict):
        raise _Invalid(f"Invalid type. Expected: object, given: {type(obj).__name__}.", field)
    for key, value in obj.items():
        if not isinstance(value, str):
            raise _Invalid(f"{what} must be strings.", f"{field}.{key}")


def _email_of(entry: Any, field: str) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
        raise _Invalid(
            "Each email address in the personalization block should be an object with an "
            "email field, and may include a name.",
            field,
        )
    address: str = entry["email"]
    if "@" not in address or any(c in address for c in " <>,;\r\n"):
        raise _Invalid("Does not contain a valid address.", f"{field}.email")
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid("The name must be a string.", f"{field}.name")
    return address.lower()


def validate(body: Any) -> int:
    """Check one Mail Send body as SendGrid does; the number of recipients, or ``_Invalid``."""
    if not isinstance(body, dict):
        raise _Invalid("Invalid type. Expected: object.", None)
    frm = body.get("from")
    if not isinstance(frm, dict) or not frm.get("email"):
        raise _Invalid("The from object must be provided for every email send.", "from")
    _email_of(frm, "from")
    if "reply_to" in body:
        _email_of(body["reply_to"], "reply_to")
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise _Invalid("You must have at least one personalization.", "personalizations")
    if len(personalizations) > MAX_PERSONALIZATIONS:
        raise _Invalid(
            "The personalization block is limited to 1000 personalizations per API request. "
            f"You have provided {len(personalizations)} personalizations.",
            "personalizations",
        )
    top_subject = body.get("subject")
    if top_subject is not None and (not isinstance(top_subject, str) or not top_subject):
        raise _Invalid("The subject is required.", "subject")
    seen: set[str] = set()
    recipients = 0
    for i, p in enumerate(personalizations):
        field = f"personalizations.{i}"
        if not isinstance(p, dict):
            raise _Invalid("Invalid type. Expected: object.", field)
        to = p.get("to")
        if not isinstance(to, list) or not to:
            raise _Invalid(
                "The to array is required for all personalization objects.", f"{field}.to"
            )
        for kind in ("to", "cc", "bcc"):
            entries = p.get(kind, [])
            if not isinstance(entries, list):
                raise _Invalid("Invalid type. Expected: array.", f"{field}.{kind}")
            for j, entry in enumerate(entries):
                address = _email_of(entry, f"{field}.{kind}.{j}")
                if address in seen:
                    raise _Invalid(
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{address}] in the personalizations.{i}.{kind} field.",
                        f"{field}.{kind}",
                    )
                seen.add(address)
                recipients += 1
        if "substitutions" in p:
            _check_strings(p["substitutions"], f"{field}.substitutions", "Substitutions")
        if "custom_args" in p:
            args = p["custom_args"]
            _check_strings(args, f"{field}.custom_args", "Custom args")
            if len(json.dumps(args)) > MAX_CUSTOM_ARGS_BYTES:
                raise _Invalid(
                    "The total size of custom arguments may not exceed 10,000 bytes per "
                    "personalization.",
                    f"{field}.custom_args",
                )
        if "headers" in p:
            _check_headers(p["headers"], f"{field}.headers")
        subject = p.get("subject", top_subject)
        if not isinstance(subject, str) or not subject:
            raise _Invalid(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
    if recipients > MAX_PERSONALIZATIONS:
        raise _Invalid(
            "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
            "personalizations",
        )
    if "custom_args" in body:
        _check_strings(body["custom_args"], "custom_args", "Custom args")
    if "headers" in body:
        _check_headers(body["headers"], "headers")
    categories = body.get("categories", [])
    if not isinstance(categories, list) or len(categories) > 10:
        raise _Invalid("You may not have more than 10 categories per request.", "categories")
    for c in categories:
        if not isinstance(c, str) or len(c) > 255:
            raise _Invalid("A category cannot be more than 255 characters.", "categories")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise _Invalid(
            "Unless a valid template_id is provided, the content parameter is required.", "content"
        )
    types = []
    for k, part in enumerate(content):
        if (
            not isinstance(part, dict)
            or not isinstance(part.get("value"), str)
            or not part["value"]
        ):
            raise _Invalid(
                "The content value must be a string at least one character in length.",
                f"content.{k}.value",
            )
        types.append(part.get("type"))
    if (
        "text/html" in types
        and "text/plain" in types
        and types.index("text/plain") > types.index("text/html")
    ):
        raise _Invalid(
            "If present, text/plain and text/html may only be provided in order of "
            "text/plain first, followed by text/html.",
            "content",
        )
    if "text/plain" in types and types.index("text/plain") != 0:
        raise _Invalid("If present, text/plain must be first.", "content")
    return recipients


class FakeSendGrid:
    """``POST /v3/mail/send`` on 127.0.0.1; ``url`` is what ``sendgrid_api_host`` takes."""

    def __init__(
        self, api_key: str = "SG.fake-key", *, record: bool = True, latency: float = 0.0
    ) -> None:
        self.api_key = api_key
        self.record = record
        self.latency = latency
        self.requests: list[dict[str, Any]] = []  # accepted bodies (when ``record``)
        self.first: dict[str, Any] | None = None  # the first accepted body, always
        self.message_ids: list[str] = []
        self.recipients = 0  # recipients of accepted requests
        self.calls = 0  # every request, accepted or not
        self.statuses: list[int] = []
        self.hits: list[Hit] = []  # every request: when it came, when it was answered, how
        self.lock = threading.Lock()
        self.suppressions: dict[str, list[dict[str, Any]]] = {}
        self.list_queries: list[tuple[str, dict[str, str]]] = []
        self._script: deque[Scripted] = deque()
        self._stalls: deque[float] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. 429 with Retry-After)."""
        with self.lock:
            self._script.extend(Scripted(status, retry_after, body) for _ in range(times))

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Take the next ``times`` requests (sent, as SendGrid would) but answer each only
        after ``seconds``: a client with a shorter timeout cannot know it was accepted."""
        with self.lock:
            self._stalls.extend([seconds] * times)

    def personalizations(self) -> list[dict[str, Any]]:
        with self.lock:
            return [p for body in self.requests for p in body["personalizations"]]

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        # Read the body first: an unread body would spoil a kept-alive connection.
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        with self.lock:
            self.calls += 1
            scripted = self._script.popleft() if self._script else None
        if handler.path.split("?")[0] != "/v3/mail/send":
            return _error(404, "not found", None)
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "The provided authorization grant is invalid, expired, or revoked", None
            )
        if scripted is not None:
            headers = {}
            if scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            body = scripted.body or {
                "errors": [{"message": f"scripted failure {scripted.status}", "field": None}]
            }
            return scripted.status, headers, json.dumps(body).encode()
        if not (handler.headers.get("Content-Type") or "").startswith("application/json"):
            return _error(415, "Content-Type should be application/json.", None)
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "Bad Request", None)
        try:
            count = validate(body)
        except _Invalid as exc:
            return _error(400, str(exc), exc.field)
        message_id = uuid.uuid4().hex[:22]
        with self.lock:
            self.recipients += count
            self.message_ids.append(message_id)
            if self.record:
                self.requests.append(body)
            if self.first is None:
                self.first = body
            stall = self._stalls.popleft() if self._stalls else 0.0
        if stall:
            time.sleep(stall)
        return 202, {"X-Message-Id": message_id}, b""

    def _list(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        path, _, query = handler.path.partition("?")
        name = path.removeprefix("/v3/suppression/")
        if not path.startswith("/v3/suppression/") or name not in SUPPRESSION_LISTS:
            return _error(404, "not found", None)
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "The provided authorization grant is invalid, expired, or revoked", None
            )
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        with self.lock:
            self.calls += 1
            self.list_queries.append((name, params))
            scripted = self._script.popleft() if self._script else None
            entries = list(self.suppressions.get(name, []))
        if scripted is not None:
            return scripted.status, {}, json.dumps(scripted.body or {"errors": []}).encode()
        try:
            limit = int(params.get("limit", "500"))
            offset = int(params.get("offset", "0"))
            start = int(params.get("start_time", "0"))
            end = int(params.get("end_time", str(2**62)))
        except ValueError:
            return _error(400, "invalid query parameter", None)
        if not 0 < limit <= 500:
            return _error(400, "limit must be between 1 and 500", "limit")
        chosen = [e for e in entries if start <= int(e.get("created", 0)) <= end]
        chosen.sort(key=lambda e: -int(e.get("created", 0)))  # newest first, as SendGrid
        return 200, {}, json.dumps(chosen[offset : offset + limit]).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                arrived = time.monotonic()
                status, headers, payload = fake._handle(self)
                if fake.latency:
                    time.sleep(max(0.0, arrived + fake.latency - time.monotonic()))
                with fake.lock:
                    fake.statuses.append(status)
                    fake.hits.append(Hit(arrived, time.monotonic(), status))
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting (stall)

            def do_GET(self) -> None:
                status, headers, payload = fake._list(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> FakeSendGrid:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _error(status: int, message: str, field: str | None) -> tuple[int, dict[str, str], bytes]:
    body = {"errors": [{"message": message, "field": field, "help": HELP}]}
    return status, {}, json.dumps(body).encode()
