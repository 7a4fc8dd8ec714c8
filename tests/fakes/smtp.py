"""An aiosmtpd sink on 127.0.0.1 that records what it receives.

It can be told to answer 4xx a number of times for an address before accepting,
refuse an address with 550, drop the connection in mid-DATA, require AUTH PLAIN
(without TLS, for loopback tests) or offer STARTTLS.

It stands for a real MTA in the benchmarks, so it must not be slower than one by
construction: aiosmtpd reads DATA one line at a time in Python (~2 ms of a core for a
43 KiB, 650-line issue, more than the sender spends). ``_BulkDataSMTP`` reads the DATA
payload in large chunks up to the "\\r\\n.\\r\\n" terminator and undoes dot-stuffing
with one ``bytes.replace``, as a C MTA does with buffered reads; every byte is still
received, every line still checked against the RFC 5321 limit, and the handler still
gets the whole message.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

_END = b"\r\n.\r\n"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class _Script:
    temp_fail: Counter[str] = field(default_factory=Counter)
    reject: set[str] = field(default_factory=set)
    drop: Counter[str] = field(default_factory=Counter)


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        sink = self.sink
        with sink.lock:
            sink.peers.add(session.peer)
            if address in sink.script.reject:
                return "550 5.1.1 No such user here"
            if sink.script.temp_fail[address] > 0:
                sink.script.temp_fail[address] -= 1
                sink.temp_failures += 1
                return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sink = self.sink
        with sink.lock:
            if sink.script.drop[envelope.rcpt_tos[0]] > 0:
                sink.script.drop[envelope.rcpt_tos[0]] -= 1
                server.transport.close()
                return "250 not reached"
            sink.count += 1
            if sink.first is None:
                sink.first_at = time.monotonic()
                sink.first = Received(
                    envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content
                )
            if sink.record:
                sink.messages.append(
                    Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
                )
        return "250 Message accepted for delivery"


class _BulkDataSMTP(SMTP):  # type: ignore[misc]
    """aiosmtpd's server with a DATA command that reads in chunks (same replies)."""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # The CRLF that ended the DATA line opens the payload, so an empty message's
        # ".\r\n" is found like any other terminator.
        buf = bytearray(b"\r\n")
        start = 0
        while (end := buf.find(_END, start)) < 0:
            start = max(len(buf) - len(_END) + 1, 0)
            # Cancelled (and the connection closed by aiosmtpd) if the client goes away.
            chunk = await self._reader.read(_CHUNK)
            if not chunk:
                return
            buf += chunk
        if len(buf) > end + len(_END):
            # Bytes after the terminator are the next command (a pipelining client):
            # give them back to the reader, which serves the command loop.
            self._reader._buffer[:0] = buf[end + len(_END) :]
        body = bytes(buf[: end + 2])
        limit = self.data_size_limit
        if max(map(len, body.split(b"\r\n"))) + 2 > self.line_length_limit:
            status = "500 Line too long (see RFC5321 4.5.3.1.6)"
        elif limit and len(body) - 2 > limit:
            status = "552 Error: Too much mail data"
        else:
            status = ""
        if status:
            await self.push(status)
            self._set_post_data_state()
            return
        content = body.replace(b"\r\n.", b"\r\n")[2:]
        self.envelope.original_content = content
        self.envelope.content = (
            content.decode("utf-8", errors="surrogateescape") if self._decode_data else content
        )
        reply = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(reply if isinstance(reply, str) else "250 OK")


class _BulkDataController(Controller):  # type: ignore[misc]
    def factory(self) -> SMTP:
        return _BulkDataSMTP(self.handler, **self.SMTP_kwargs)


class SMTPSink:
    """``with SMTPSink() as sink: ...`` serves SMTP on ``sink.host``:``sink.port``."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        record: bool = True,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.record = record
        self.messages: list[Received] = []  # every message (when ``record``)
        self.first: Received | None = None  # the first message, always
        self.first_at: float | None = None  # when it came (time.monotonic)
        self.count = 0
        self.temp_failures = 0
        self.peers: set[tuple[str, int]] = set()
        self.auth_attempts: list[tuple[str, bool]] = []
        self.script = _Script()
        self.lock = threading.Lock()
        kwargs: dict[str, Any] = {"server_hostname": "sink.test"}
        if auth is not None:
            kwargs.update(
                authenticator=self._authenticator(auth),
                auth_required=True,
                auth_require_tls=tls_context is not None,
            )
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.controller = _BulkDataController(
            _Handler(self), hostname=self.host, port=self.port, **kwargs
        )

    def _authenticator(self, auth: tuple[str, str]) -> Any:
        def check(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == auth[0]
                and data.password.decode() == auth[1]
            )
            with self.lock:
                self.auth_attempts.append((mechanism, ok))
            return AuthResult(success=ok, handled=False)

        return check

    def url(
        self, *, user: str = "", password: str = "", scheme: str = "smtp", query: str = ""
    ) -> str:
        from urllib.parse import quote

        cred = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
        return f"{scheme}://{cred}{self.host}:{self.port}" + (f"?{query}" if query else "")

    def temp_fail(self, address: str, times: int = 1) -> None:
        """Answer 451 at RCPT for ``address`` the next ``times`` times."""
        with self.lock:
            self.script.temp_fail[address] += times

    def reject(self, address: str) -> None:
        """Answer 550 at RCPT for ``address``, always."""
        with self.lock:
            self.script.reject.add(address)

    def drop_connection(self, address: str, times: int = 1) -> None:
        """Close the connection instead of answering the DATA of a message to ``address``."""
        with self.lock:
            self.script.drop[address] += times

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        with self.lock:
            for m in self.messages:
                for r in m.rcpt_tos:
                    out.setdefault(r, []).append(m)
        return out

    def __enter__(self) -> SMTPSink:
        self.controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.controller.stop()
