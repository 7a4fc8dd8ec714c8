"""An aiosmtpd sink on 127.0.0.1 that records what it receives.

It can be told to answer 4xx a number of times for an address before accepting,
refuse an address with 550, drop the connection in mid-DATA, require AUTH PLAIN
(without TLS, for loopback tests) or offer STARTTLS.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


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
            if sink.record:
                sink.messages.append(
                    Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
                )
        return "250 Message accepted for delivery"


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
        self.messages: list[Received] = []
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
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

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
